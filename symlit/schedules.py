"""Learning-rate schedules, stepped once per optimizer step.

Each factory takes the optimizer and the total number of training steps (from
``trainer.estimated_stepping_batches``) and returns a ``torch`` scheduler; Hydra configs under
``conf/optim/`` select one with ``_target_`` and ``_partial_: true``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def _check_warmup(warmup_steps: int) -> None:
    if warmup_steps < 0:
        raise ValueError(f"optim.scheduler.warmup_steps={warmup_steps} must be >= 0")


def inverse_sqrt(optimizer: Optimizer, total_steps: int, warmup_steps: int = 4000) -> LRScheduler:
    """Linear warmup to the peak LR, then decay as ``sqrt(warmup / step)`` (Vaswani et al., 2017)."""
    _check_warmup(warmup_steps)
    warm = max(warmup_steps, 1)

    def factor(step: int) -> float:
        step += 1
        return step / warm if step < warm else math.sqrt(warm / step)

    return LambdaLR(optimizer, factor)


def cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 1000, min_lr_ratio: float = 0.0) -> LRScheduler:
    """Linear warmup, then cosine decay to ``min_lr_ratio * peak`` at ``total_steps``."""
    _check_warmup(warmup_steps)
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"optim.scheduler.min_lr_ratio={min_lr_ratio} must be in [0, 1]")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    warmup_steps: int | None = None,
) -> LRScheduler:
    """One-cycle policy (Smith, super-convergence) peaking at the optimizer's LR.

    The LR rises for ``pct_start`` of training, or for ``warmup_steps`` steps when that is set
    (the knob every schedule here shares), then anneals to ``peak / (div_factor * final_div_factor)``.
    """
    if warmup_steps is not None:
        _check_warmup(warmup_steps)
        pct_start = min(max(warmup_steps / max(total_steps, 1), 1e-3), 0.999)
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"optim.scheduler.pct_start={pct_start} must be in (0, 1)")
    peak = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer,
        max_lr=peak,
        total_steps=max(total_steps, 2),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum=False,
    )


def constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LRScheduler:
    """Constant LR after an optional linear warmup."""
    _check_warmup(warmup_steps)
    return LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0)
