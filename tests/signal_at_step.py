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
