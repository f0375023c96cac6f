"""A run killed with SIGKILL mid-epoch and rerun with the same command ends where an uninterrupted run ends."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch
from signal_at_step import signals_at, train_in

COMMAND = [
    "experiment=addition",
    "data.task.n_train=1500",
    "data.task.n_valid=100",
    "data.task.n_test=100",
    "data.batch_size=8",  # 188 steps per epoch, 376 in all
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=25",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "run_name=resume",
]
# the training process kills itself in the middle of the step that starts at global step 210 (second
# epoch; last.ckpt is at step 200 then), through the test-only callback of tests/signal_at_step.py
KILL_AT_210 = signals_at({210: "SIGKILL"})


def train(root: Path, extra: list[str]) -> subprocess.CompletedProcess:
    return train_in(root, [*COMMAND, *extra])


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(tmp_path):
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    killed_root.mkdir()
    clean_root.mkdir()
    run = Path("outputs/addition/resume")

    killed = train(killed_root, KILL_AT_210)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert checkpoint(killed_root / run / "checkpoints" / "last.ckpt")["global_step"] == 200
    assert not (killed_root / run / "metrics.json").exists()

    resumed = train(killed_root, KILL_AT_210)  # the same command; a resumed process sends no signal
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr

    clean = train(clean_root, [])
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]

    final_killed = checkpoint(killed_root / run / "checkpoints" / "last.ckpt")
    final_clean = checkpoint(clean_root / run / "checkpoints" / "last.ckpt")
    assert final_killed["global_step"] == final_clean["global_step"] == 376
    for name, tensor in final_clean["state_dict"].items():
        torch.testing.assert_close(final_killed["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
