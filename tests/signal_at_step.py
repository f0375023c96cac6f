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
