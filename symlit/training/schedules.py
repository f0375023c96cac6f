"""Learning-rate schedules, stepped once per optimizer step.

Each factory takes the optimizer and the total number of training steps (from
``trainer.estimated_stepping_batches``) and returns a ``torch`` scheduler; Hydra configs under
``conf/optim/`` select one with ``_target_`` and ``_partial_: true``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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


class HoldUntilImproved(LRScheduler):
    """Linear warmup, then the peak LR held until validation first passes a threshold, then a cosine decay.

    A plateau (a model that has not yet found the algorithm) is left at the peak LR instead of under
    a schedule that has already decayed. The module hands every validation's metrics to
    :meth:`observe`; the first time ``monitor`` passes ``threshold`` (``mode=max``: ``>=``;
    ``min``: ``<=``), the decay starts at the next step and runs over ``decay_steps`` steps (default:
    the steps left until ``total_steps``) down to ``min_lr_ratio * peak``. ``max_hold_steps`` starts
    the decay even without improvement (``None``: hold until it comes). The release step is part of
    :meth:`state_dict`, so a resumed run decays from the same step.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        monitor: str = "val/seq_acc",
        threshold: float = 0.5,
        mode: str = "max",
        decay_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        max_hold_steps: int | None = None,
    ) -> None:
        _check_warmup(warmup_steps)
        if mode not in ("max", "min"):
            raise ValueError(f"optim.scheduler.mode={mode!r} must be 'max' (e.g. val/seq_acc) or 'min' (val/loss)")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"optim.scheduler.min_lr_ratio={min_lr_ratio} must be in [0, 1]")
        if decay_steps is not None and decay_steps < 1:
            raise ValueError(f"optim.scheduler.decay_steps={decay_steps} must be >= 1, or null for the steps left")
        if max_hold_steps is not None and max_hold_steps < 0:
            raise ValueError(
                f"optim.scheduler.max_hold_steps={max_hold_steps} must be >= 0, or null to hold until improved"
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"optim.scheduler.monitor={monitor!r} must name a validation metric, e.g. val/seq_acc")
        self.total_steps, self.warmup_steps, self.monitor = total_steps, warmup_steps, monitor
        self.threshold, self.mode, self.decay_steps = float(threshold), mode, decay_steps
        self.min_lr_ratio, self.max_hold_steps = min_lr_ratio, max_hold_steps
        self.release_step: int | None = None  # the first step of the decay
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        """The LR multiplier at optimizer step ``step`` (0-based), given the release so far."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        release = self.release_step
        if self.max_hold_steps is not None:
            forced = max(self.warmup_steps, self.max_hold_steps)
            release = forced if release is None else min(release, forced)
        if release is None or step < release:
            return 1.0
        length = self.decay_steps or max(1, self.total_steps - release)
        progress = min(1.0, (step - release) / length)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def observe(self, metrics: Mapping[str, Any]) -> None:
        """Read one validation's metrics; the first pass of the threshold starts the decay at the next step."""
        if self.release_step is not None:
            return
        if self.monitor not in metrics:
            known = sorted(k for k in metrics if k.startswith("val"))
            raise ValueError(
                f"optim.scheduler.monitor={self.monitor!r} is not a validation metric of this run; "
                f"choose one of {known[:12]}"
            )
        value = float(metrics[self.monitor])
        if value >= self.threshold if self.mode == "max" else value <= self.threshold:
            self.release_step = max(self.last_epoch, self.warmup_steps)


def hold_until_improved(optimizer: Optimizer, total_steps: int, **kwargs: Any) -> HoldUntilImproved:
    """:class:`HoldUntilImproved` (the factory form the other schedules have)."""
    return HoldUntilImproved(optimizer, total_steps, **kwargs)
