"""The training dashboard: per-split curves (buckets, OOD splits, the task's tallies), best/* figures,
throughput, run facts, hyper-parameters once, the task's test pictures; read back from the real
offline W&B run file of a real (tiny) training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wandb_records import read_run

from symlit.training.train import train

pytestmark = pytest.mark.xdist_group("test_dashboard")  # pytest-xdist: the module-scoped fixture is built once

TINY = [
    "data.task.n_train=200",
    "data.task.n_valid=40",
    "data.task.n_test=40",
    "data.task.ood.three_digits.n=20",
    "data.batch_size=32",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "model.d_model=32",
    "model.d_ff=64",
    "model.n_encoder_layers=1",
    "model.n_decoder_layers=1",
    "print_config=false",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    """A 2-epoch run on 200 additions with the W&B logger (offline) and its metrics."""
    from hydra import compose, initialize_config_dir

    from symlit.core.config import config_dir

    root = tmp_path_factory.mktemp("dashboard")
    run_dir = root / "outputs" / "addition" / "tiny"
    overrides = [
        f"paths.root_dir={root}",
        f"paths.run_dir={run_dir}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=wandb",
        "logger.wandb.tags=[dash,test]",
        "logger.wandb.notes=a tiny run",
        "logger.wandb.log_model=true",
        *TINY,
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    metrics = train(cfg)
    return run_dir, metrics


def _offline(run_dir: Path):
    """The training run (other sessions may have added runs next to it)."""
    (run,) = [r for r in map(read_run, run_dir.glob("wandb/offline-run-*")) if "val/seq_acc" in r.history]
    return run


def test_tallies_and_buckets_of_every_split_are_in_metrics_json(tiny_run):
    run_dir, metrics = tiny_run
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert saved == pytest.approx(metrics)
    for prefix in ("val", "val/three_digits", "test", "test/three_digits"):
        assert f"{prefix}/acc_by_pos/0" in saved and f"{prefix}/acc_by_carries/0" in saved, prefix
    # the three_digits split is one bucket and one operand length: both are its exact match
    for key in ("test/three_digits/bucket/digits=3", "test/three_digits/acc_by_len/3"):
        assert saved[key] == pytest.approx(saved["test/three_digits/seq_acc"])
    assert {"test/bucket/digits=1", "test/bucket/digits=2", "val/bucket/digits=2"} <= set(saved)
    assert all(0.0 <= v <= 1.0 for k, v in saved.items() if "/acc_by_" in k or "/bucket/" in k)


def test_wandb_run_has_curves_best_figures_throughput_facts_and_one_config(tiny_run):
    run_dir, metrics = tiny_run
    run = _offline(run_dir)
    epochs = 2
    # curves during training: one point per validation epoch, for valid and the OOD split
    for key in ("val/seq_acc", "val/three_digits/seq_acc", "val/bucket/digits=2", "val/three_digits/acc_by_pos/3"):
        assert len(run.history[key]) == epochs, key
    # the best checkpoint's re-validation is best/*, not a third point of the val/* curve
    assert run.history["best/val/seq_acc"] == [pytest.approx(metrics["val/seq_acc"])]
    assert run.summary["best/val/three_digits/seq_acc"] == pytest.approx(metrics["val/three_digits/seq_acc"])
    assert all(v > 0 for v in run.history["train/samples_per_s"] + run.history["train/tokens_per_s"])
    tokens_per_sample = [t / s for t, s in zip(run.history["train/tokens_per_s"], run.history["train/samples_per_s"])]
    assert all(8 <= r <= 14 for r in tokens_per_sample)  # 5..8 source tokens + EOS, 2..4 target tokens + EOS
    facts = run.config["run"]
    assert facts["model/parameters"] > 0 and facts["data/rows/train"] == 200 and facts["data/rows/three_digits"] == 20
    assert facts["data/leakage"].startswith("leakage vs train (200 rows)")
    assert run.summary["data/rows/valid"] == 40 and run.summary["model/parameters"] == facts["model/parameters"]
    # hyper-parameters once: the composed config, without the module's copy of the tokenizer JSON
    assert "tokenizer_json" not in json.dumps(run.config)
    assert run.config["optim"]["optimizer"]["lr"] > 0
    assert run.tags == ["dash", "test"] and run.notes == "a tiny run"
    assert run.group == "addition" and run.name == "addition/tiny"
    assert run.exit_code == 0 and not run.preempting
    assert ("model", f"model-{run.id}") in run.artifacts  # logger.wandb.log_model: checkpoints as artifacts


def test_task_pictures_and_length_histograms_are_saved_and_logged(tiny_run):
    run_dir, _ = tiny_run
    run = _offline(run_dir)
    for png, key in (("length_heatmap.png", "test/length_heatmap"), ("lengths.png", "data/lengths")):
        assert (run_dir / png).stat().st_size > 10_000, png
        (logged,) = run.summary[f"{key}/filenames"]
        assert (next(run_dir.glob("wandb/offline-run-*")) / "files" / logged).is_file()


def test_a_linked_run_joins_the_training_runs_group(tiny_run):
    """logger.attach=linked: a new W&B run in the training run's group, named after it, pointing to it."""
    from omegaconf import OmegaConf

    from symlit.review.dashboard import attach_run

    run_dir, _ = tiny_run
    trained = _offline(run_dir)
    logger = OmegaConf.create({"attach": "linked", "train_run_id": None, "project": "symlit", "offline": True})
    run = attach_run(run_dir, logger, "eval", "eval/best-test-greedy", {"split": "test"})
    run.summary["eval/test/greedy/greedy_acc"] = 0.5
    run_id = run.id
    run.finish()
    import wandb

    wandb.teardown()  # the service writes the run file out when it stops
    (path,) = run_dir.glob(f"wandb/offline-run-*-{run_id}")
    linked = read_run(path)
    assert linked.id != trained.id and linked.group == trained.group == "addition"
    assert linked.name == "addition/tiny/eval/best-test-greedy"
    assert linked.config["train_run_id"] == trained.id and linked.config["split"] == "test"
    assert linked.summary["eval/test/greedy/greedy_acc"] == 0.5
