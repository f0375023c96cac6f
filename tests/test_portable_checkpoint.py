"""Portable checkpoints: a checkpoint evaluates on another path, without the files it was trained on."""

from __future__ import annotations

import json
import shutil

import pytest
from hydra import compose, initialize_config_dir

from symlit.core.config import config_dir
from symlit.models.checkpoint import load_checkpoint
from symlit.review.evaluate import run_eval
from symlit.tasks import CalculusTask, FileTask, QEDSymbaTask
from symlit.training.train import train


def _pairs(n: int, offset: int = 0) -> str:
    """``source,target`` rows: a digit sequence and its reverse."""
    rows = ["source,target"]
    for i in range(offset, offset + n):
        digits = " ".join(str(i * 7919 % 10**4).zfill(4))
        rows.append(f"{digits},{' '.join(reversed(digits.split()))}")
    return "\n".join(rows) + "\n"


def test_a_moved_checkpoint_evaluates_on_a_split_file_without_its_training_data(tmp_path):
    data = tmp_path / "train_data"
    data.mkdir()
    (data / "train.csv").write_text(_pairs(64))
    root = tmp_path / "work"
    overrides = [
        "experiment=from_file",
        f"data.task.train={data / 'train.csv'}",
        f"paths.root_dir={root}",
        f"paths.run_dir={root / 'run'}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=1",
        "logger=none",
        "model.d_model=32",
        "model.d_ff=64",
        "model.n_encoder_layers=1",
        "model.n_decoder_layers=1",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        train(compose("train", overrides=overrides))
    # the checkpoint alone, in an empty directory elsewhere; the training files and the run are gone
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.copy(root / "run" / "checkpoints" / "best.ckpt", moved)
    shutil.rmtree(data)
    shutil.rmtree(root)
    split_file = tmp_path / "given" / "held_out.csv"
    split_file.parent.mkdir()
    split_file.write_text(_pairs(12, offset=500))

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("eval", overrides=[f"ckpt={moved}", f"split_file={split_file}", "verify.workers=0"])
    summary = run_eval(cfg)
    out = moved.parent / "eval" / next(p.name for p in (moved.parent / "eval").iterdir())
    assert out.name.startswith("model-held_out-greedy-")
    saved = json.loads((out / "eval.json").read_text())
    assert saved["metrics"]["n"] == summary["n"] == 12
    assert saved["split"] == str(split_file)
    sources = [json.loads(line)["source"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(sources) == sorted(line.split(",")[0] for line in _pairs(12, offset=500).splitlines()[1:])
    assert load_checkpoint(moved).task.train == str(data / "train.csv")  # the task still says where it came from


@pytest.mark.parametrize(
    "task, key",
    [
        (lambda: FileTask(train="/nowhere/train.csv"), "data.task.train=/nowhere/train.csv"),
        (lambda: CalculusTask(path="/nowhere/prim_fwd.txt", n_train=None), "data.task.path=/nowhere/prim_fwd.txt"),
        (lambda: QEDSymbaTask(path="/nowhere/qed.csv"), "data.task.path=/nowhere/qed.csv"),
    ],
)
def test_file_backed_tasks_check_their_paths_when_data_is_built_not_when_built_from_a_config(task, key):
    built = task()  # a checkpoint's task: constructing it touches no file
    with pytest.raises(FileNotFoundError, match=f"^{key} does not exist"):
        built.build()
    with pytest.raises(FileNotFoundError, match=f"^{key} does not exist"):
        built.fingerprint()
