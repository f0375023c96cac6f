"""Integration tests: the real Hydra configs, the real Lightning Trainer, real loggers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, MissingMandatoryValue

from symlit.config import config_dir, run_id
from symlit.train import RunDirectoryError, train

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
SMALL_DATA = ["data.task.n_train=200", "data.task.n_valid=40", "data.task.n_test=40"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_fast_dev_run(make_cfg, tmp_path, experiment):
    extra = []
    if experiment == "from_file":
        path = tmp_path / "pairs.jsonl"
        path.write_text("\n".join(json.dumps({"source": f"x {i} y", "target": f"{i} z"}) for i in range(300)))
        extra = [f"data.task.train={path}"]
    if experiment in ("addition", "addition_4x2", "subtraction", "multiplication"):
        extra = SMALL_DATA  # addition_4x2 would otherwise draw its 1,000,000 training problems (~40 s)
    # one tiny batch: GPU-scale experiments (d_model 512, long sequences) stay cheap on a CPU
    small = ["data.batch_size=4", "data.eval_batch_size=4", "module.decode_max_len=32"]
    metrics = train(make_cfg(f"experiment={experiment}", "debug=fast_dev_run", *small, *extra))
    assert "test/seq_acc" in metrics and "val/seq_acc" in metrics


@pytest.mark.parametrize("optim", ["inverse_sqrt", "cosine", "one_cycle", "constant"])
def test_short_run_writes_metrics_tokenizer_and_checkpoints(make_cfg, tmp_path, optim):
    run_dir = tmp_path / "run"
    cfg = make_cfg(*SMALL_DATA, f"optim={optim}", "logger=csv", "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
                   run_dir=run_dir)
    metrics = train(cfg)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(metrics)
    assert {"val/seq_acc", "val/tok_acc", "val/loss", "test/seq_acc", "test/three_digits/seq_acc"} <= set(metrics)
    assert (run_dir / "tokenizer.json").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "lr-AdamW" in header and "train/loss" in header


def test_wandb_offline_run_with_prediction_table(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the config alone must keep W&B offline
    run_dir = tmp_path / "run"
    cfg = make_cfg(*SMALL_DATA, "logger=wandb", "trainer.max_epochs=1", run_dir=run_dir)
    train(cfg)
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id_saved = (run_dir / "wandb_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id_saved)
    tables = list(runs[0].rglob("val/predictions*.table.json"))
    assert tables, "no W&B prediction table written"
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["input", "target", "prediction", "correct"] and table["data"]


def test_finished_run_is_not_retrained_and_resume_false_protects_it(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    args = (*SMALL_DATA, "logger=none", "trainer.max_epochs=1")
    train(make_cfg(*args, run_dir=run_dir))
    last = run_dir / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=False)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["finished"] and saved["global_step"] == before["global_step"] > 0
    again = train(make_cfg(*args, run_dir=run_dir))  # same command: nothing left to train, only evaluation
    after = torch.load(last, weights_only=False)
    assert after["global_step"] == before["global_step"]
    for name, tensor in before["state_dict"].items():
        assert torch.equal(after["state_dict"][name], tensor), name
    assert again == pytest.approx(saved["metrics"])
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == saved["global_step"]
    with pytest.raises(RunDirectoryError, match="resume=false"):
        train(make_cfg(*args, "resume=false", run_dir=run_dir))


@pytest.mark.parametrize("change", ["data.task.encoding=number", "data.task.n_train=150", "model.d_ff=256", "seed=1"])
def test_changed_config_in_existing_run_is_refused(make_cfg, tmp_path, change):
    run_dir = tmp_path / "run"
    train(make_cfg(*SMALL_DATA, "logger=none", "trainer.max_epochs=1", run_dir=run_dir))
    with pytest.raises(RunDirectoryError, match="config changed"):
        train(make_cfg(*SMALL_DATA, change, "logger=none", "trainer.max_epochs=1", run_dir=run_dir))


@pytest.mark.parametrize("encoding", ["reversed", "number", "text"])
def test_every_encoding_trains_fast_dev_run(make_cfg, encoding):
    metrics = train(make_cfg(*SMALL_DATA, f"data.task.encoding={encoding}", "debug=fast_dev_run"))
    assert 0.0 <= metrics["test/seq_acc"] <= 1.0


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("data.task.min_value=500", ValueError, "data.task.min_value=500 is greater than data.task.max_value=100"),
        ("data.task.digits=0", ValueError, "data.task.digits=0"),
        ("data.task.operators=[/]", ValueError, "data.task.operators"),
        ("data.batch_size=0", ValueError, "data.batch_size=0"),
        ("model.d_model=130", ValueError, "model.d_model=130"),
        ("model.max_positions=8", ValueError, "model.max_positions=8"),
        ("optim.scheduler.warmup_steps=-1", ValueError, "optim.scheduler.warmup_steps=-1"),
        ("module.label_smoothing=2", ValueError, "module.label_smoothing=2"),
    ],
)
def test_bad_values_raise_clear_errors(make_cfg, override, error, message):
    cfg = make_cfg(*SMALL_DATA, override, "debug=fast_dev_run")
    with pytest.raises(Exception) as info:
        train(cfg)
    assert message in str(info.value)
    causes = [info.value]  # Hydra wraps errors raised while instantiating; the original is a cause
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(isinstance(c, error) for c in causes), causes


def test_unknown_keys_and_missing_values_fail_in_hydra(make_cfg, tmp_path):
    with pytest.raises(ConfigCompositionException, match="data.task.colour"):
        make_cfg("data.task.colour=red")
    with pytest.raises(ConfigCompositionException, match="experiment"):
        make_cfg("experiment=does_not_exist")
    cfg = make_cfg("experiment=from_file")
    with pytest.raises((MissingMandatoryValue, ConfigAttributeError), match="train"):
        _ = cfg.data.task.train


def test_run_id_is_derived_from_the_command():
    assert run_id(None, "") == "default"
    assert run_id(None, "optim.lr=0.001,seed=2") == "optim.lr=0.001,seed=2"
    assert run_id("mine", "optim.lr=0.001") == "mine"
    assert run_id("mine", "optim.lr=0.001", True) == "mine/optim.lr=0.001"
    assert "/" not in run_id(None, "paths.x=/a/b")
    long = run_id(None, "x=" + "9" * 300)
    assert len(long) <= 100 and long != run_id(None, "x=" + "9" * 299)
