"""Test-only callback: the training process signals itself at exact global steps (never on a timer).

Subprocess tests add it with
``+callbacks.signals._target_=signal_at_step.SignalAtStep +callbacks.signals.steps=[20,23]
+callbacks.signals.signals=[SIGUSR1,SIGKILL]`` and ``tests/`` on ``PYTHONPATH``. The signal is sent
at the start of the batch that begins at that step, i.e. in the middle of a training step, the
hardest moment for a checkpoint. A process that resumed from a checkpoint sends nothing, so the
rerun of the same command trains to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L


class SignalAtStep(L.Callback):
    """Send ``signals[i]`` to this process when batch ``steps[i]`` (a global step) starts."""

    def __init__(self, steps: list[int], signals: list[str]) -> None:
        if len(steps) != len(signals):
            raise ValueError("SignalAtStep: steps and signals must have the same length")
        self.plan = {int(step): signal.Signals[name] for step, name in zip(steps, signals)}
        self.resumed = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.resumed = trainer.ckpt_path is not None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        sig = None if self.resumed else self.plan.pop(trainer.global_step, None)
        if sig is not None and trainer.is_global_zero:
            print(f"SignalAtStep: {sig.name} at step {trainer.global_step}", flush=True)
            os.kill(os.getpid(), sig)


def signals_at(plan: dict[int, str]) -> list[str]:
    """Overrides that make the training process send itself ``plan[step]`` at each global ``step``."""
    return [
        "+callbacks.signals._target_=signal_at_step.SignalAtStep",
        f"+callbacks.signals.steps=[{','.join(str(k) for k in plan)}]",
        f"+callbacks.signals.signals=[{','.join(plan.values())}]",
    ]


def train_in(root: Path, args: list[str], timeout: int = 1800) -> subprocess.CompletedProcess:
    """``symlit-train *args`` as a process in ``root`` (``SYMLIT_ROOT``), with ``tests/`` on the path
    for :class:`SignalAtStep`; its output is captured, its exit status left to the caller."""
    tests = str(Path(__file__).resolve().parent)
    python_path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SYMLIT_ROOT": str(root), "PYTHONPATH": python_path}
    return subprocess.run(
        [sys.executable, "-m", "symlit.training.train", *args],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: a two-epoch addition run of 376 steps with last.ckpt every 25 steps, its output in csv: the run
#: that the kill-and-rerun tests interrupt (add ``experiment=...`` and ``run_name=...``)
KILLABLE_RUN = [
    "data.task.n_train=1500",
    "data.task.n_valid=100",
    "data.task.n_test=100",
    "data.batch_size=8",  # 188 steps per epoch, 376 in all
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=25",
    "logger=csv",
    "trainer.enable_progress_bar=false",
]
# the training process kills itself in the middle of the step that starts at global step 210 (second
# epoch; last.ckpt is at step 200 then), through the test-only callback SignalAtStep
KILL_AT_210 = signals_at({210: "SIGKILL"})


def killed_run(tmp_path: Path, args: list[str]) -> Path:
    """``symlit-train *args`` in a new root ``tmp_path/killed`` (returned), killed by SIGKILL
    mid-step at global step 210."""
    root = tmp_path / "killed"
    root.mkdir()
    killed = train_in(root, [*args, *KILL_AT_210])
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    return root


def resumed_run(root: Path, args: list[str]) -> None:
    """The killed command again in ``root``: it restores last.ckpt and trains to the end (a resumed
    process sends no signal)."""
    resumed = train_in(root, [*args, *KILL_AT_210])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr


def clean_run(tmp_path: Path, args: list[str]) -> Path:
    """``symlit-train *args`` in a new root ``tmp_path/clean`` (returned), uninterrupted, to the end."""
    root = tmp_path / "clean"
    root.mkdir()
    clean = train_in(root, args)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    return root


def assert_same_last_checkpoint(killed: Path, clean: Path, steps: int) -> None:
    """The killed-and-resumed run's last.ckpt is the uninterrupted run's: same step, same weights."""
    import torch

    final_killed = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    final_clean = torch.load(clean / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final_killed["global_step"] == final_clean["global_step"] == steps
    for name, tensor in final_clean["state_dict"].items():
        torch.testing.assert_close(final_killed["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
