"""A run killed with SIGKILL mid-epoch and rerun with the same command ends where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

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


def start(root: Path) -> subprocess.Popen:
    env = {**os.environ, "SYMLIT_ROOT": str(root)}
    return subprocess.Popen([sys.executable, "-m", "symlit.train", *COMMAND], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(tmp_path):
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    killed_root.mkdir()
    clean_root.mkdir()
    run = Path("outputs/addition/resume")

    proc = start(killed_root)
    last = killed_root / run / "checkpoints" / "last.ckpt"
    deadline, step_at_kill, seen = time.time() + 240, 0, None
    while step_at_kill < 200 and proc.poll() is None and time.time() < deadline:  # kill inside epoch 2
        time.sleep(0.05)
        if last.exists() and last.stat().st_mtime_ns != seen:
            seen = last.stat().st_mtime_ns
            step_at_kill = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 188 < step_at_kill < 376, f"the kill was not in the middle of the second epoch (step {step_at_kill})"
    assert not (killed_root / run / "metrics.json").exists()

    resumed = start(killed_root)
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert "Restored all states from the checkpoint" in log

    clean = start(clean_root)
    clean_log = clean.communicate(timeout=300)[0]
    assert clean.returncode == 0, clean_log

    final_killed = weights(killed_root / run / "checkpoints" / "last.ckpt")
    final_clean = weights(clean_root / run / "checkpoints" / "last.ckpt")
    for name, tensor in final_clean.items():
        torch.testing.assert_close(final_killed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    steps = [torch.load(r / run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
             for r in (killed_root, clean_root)]
    assert steps == [376, 376]
