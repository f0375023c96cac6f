"""The arithmetic experiments run end to end under fast_dev_run (real Hydra, Lightning)."""

from __future__ import annotations

import pytest

from symlit.training.train import train

# small splits; the out-of-distribution splits keep their lengths (up to 100 digits) but shrink
SMALL = {
    "addition_4x2_digits": ["data.task.ood.five_operands.n=8"],
    "addition_4x2_digits_scratchpad": ["data.task.ood.five_operands.n=8", "module.loss_on=answer"],
    "addition_4x2_digits_curriculum": ["data.task.ood.five_operands.n=8", "data.task.ood.four_operands.n=8"],
    "lee_reversed": [],
    "lee_table": ["data.task.scratchpad=lee_detailed"],
    "multiplication_scratchpad": [],
    "multiplication_3x3_scratchpad": [],
    "length_generalization": [f"data.task.ood.{s}.n=8" for s in ("d11", "d15", "d20", "d25", "d30", "grid")],
    "length_generalization_coupled": [f"data.task.ood.{s}.n=8" for s in ("d11", "d15", "d20", "d25", "d30", "grid")],
    "length_generalization_long_valid": [
        f"data.task.ood.{s}.n=8" for s in ("d11", "d15", "d20", "d25", "d30", "grid", "valid_long")
    ],
    "length_generalization_coupled_alibi": [
        f"data.task.ood.{s}.n=8" for s in ("d11", "d15", "d20", "d25", "d30", "d50", "d100", "grid", "valid_long")
    ],
    "length_generalization_gpu": [f"data.task.ood.{s}.n=8" for s in ("d25", "d30", "d40", "d50", "d75", "d100", "grid")]
    + ["data.num_workers=0", "trainer.devices=1"],
}


@pytest.mark.parametrize(
    "experiment",
    [pytest.param(e, marks=pytest.mark.slow) if e.endswith("_gpu") else e for e in sorted(SMALL)],  # _gpu: base size
)
def test_arithmetic_experiment_runs_fast_dev_run(make_cfg, experiment):
    cfg = make_cfg(
        f"experiment={experiment}",
        "debug=fast_dev_run",
        "logger=csv",
        "data.task.n_train=200",
        "data.task.n_valid=40",
        "data.task.n_test=40",
        # an untrained model decodes to the length limit: keep it short (the encoder still sees
        # the longest sources and the loss the longest targets, so positions are checked)
        "data.batch_size=8",
        "data.eval_batch_size=8",
        "module.decode_max_len=16",
        *SMALL[experiment],
    )
    metrics = train(cfg)
    tested = [s for s in cfg.data.task.ood if not s.startswith("valid_")]
    validated = [s for s in cfg.data.task.ood if s.startswith("valid_")]
    assert {"val/seq_acc", "test/seq_acc", *(f"test/{s}/seq_acc" for s in tested)} <= set(metrics)
    assert {f"val/{s}/seq_acc" for s in validated} <= set(metrics)
    assert not {f"test/{s}/seq_acc" for s in validated} & set(metrics)
