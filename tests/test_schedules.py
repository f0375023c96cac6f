"""Learning-rate schedules: textbook values at chosen steps, and the hold-until-improved schedule."""

from __future__ import annotations

import math

import pytest
import torch

from symlit.training import schedules

PEAK = 2.0


def trajectory(make, steps: int, observe: dict[int, dict[str, float]] | None = None) -> list[float]:
    """The LR of optimizer steps 0..steps-1 under the schedule ``make(optimizer)``; ``observe`` hands
    metrics to the schedule after the given number of steps (as validation does)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    scheduler = make(optimizer)
    lrs = []
    for step in range(steps):
        if observe and step in observe:
            scheduler.observe(observe[step])
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_inverse_sqrt_is_linear_warmup_then_sqrt_decay():
    lrs = trajectory(lambda o: schedules.inverse_sqrt(o, 1000, warmup_steps=4), 100)
    # step s (1-based) = index + 1: s / warmup during warmup, sqrt(warmup / s) after
    expected = {0: 0.25, 2: 0.75, 3: 1.0, 15: math.sqrt(4 / 16), 99: math.sqrt(4 / 100)}
    for index, factor in expected.items():
        assert lrs[index] == pytest.approx(PEAK * factor), index


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
def test_cosine_is_linear_warmup_then_half_cosine_to_the_floor(min_lr_ratio):
    lrs = trajectory(lambda o: schedules.cosine(o, 110, warmup_steps=10, min_lr_ratio=min_lr_ratio), 130)

    def textbook(step: int) -> float:
        if step < 10:
            return (step + 1) / 10
        progress = min(1.0, (step - 10) / 100)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    for step in (0, 4, 9, 10, 35, 60, 85, 109, 110, 129):
        assert lrs[step] == pytest.approx(PEAK * textbook(step)), step
    assert lrs[60] == pytest.approx(PEAK * (min_lr_ratio + (1 - min_lr_ratio) * 0.5))  # half-way: half the range
    assert lrs[129] == pytest.approx(PEAK * min_lr_ratio)  # past the end: the floor


def test_constant_warms_up_then_stays():
    lrs = trajectory(lambda o: schedules.constant(o, 100, warmup_steps=4), 50)
    assert lrs[:5] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0])
    assert lrs[49] == pytest.approx(PEAK)
    assert trajectory(lambda o: schedules.constant(o, 100), 3) == pytest.approx([PEAK] * 3)


def test_one_cycle_starts_at_peak_over_div_factor_and_peaks_at_pct_start():
    lrs = trajectory(lambda o: schedules.one_cycle(o, 100, pct_start=0.3, div_factor=25.0, final_div_factor=1e4), 100)
    assert lrs[0] == pytest.approx(PEAK / 25)
    assert max(lrs) == pytest.approx(PEAK) and lrs.index(max(lrs)) == 29  # torch: peak at pct_start * total - 1
    assert lrs[99] == pytest.approx(PEAK / 25 / 1e4, rel=1e-3)


# ---------------------------------------------------------------------------- hold until improved
def hold(optimizer, **kwargs):
    return schedules.hold_until_improved(optimizer, 1000, **{"warmup_steps": 10, "threshold": 0.5, **kwargs})


def test_hold_stays_at_the_peak_until_validation_passes_the_threshold():
    # validations after 100, 200, 300 steps: seq_acc 0.1, 0.3 (plateau), then 0.6 (passes 0.5)
    observe = {100: {"val/seq_acc": 0.1}, 200: {"val/seq_acc": 0.3}, 300: {"val/seq_acc": 0.6}}
    lrs = trajectory(lambda o: hold(o, decay_steps=200, min_lr_ratio=0.1), 600, observe)
    assert lrs[0] == pytest.approx(PEAK * 0.1) and lrs[9] == pytest.approx(PEAK)  # warmup
    assert lrs[10:300] == pytest.approx([PEAK] * 290)  # held through the plateau
    # cosine from step 300 over 200 steps to 0.1 x peak; the floor after that
    for step in (300, 350, 400, 450, 499, 500, 599):
        progress = min(1.0, (step - 300) / 200)
        assert lrs[step] == pytest.approx(PEAK * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))), step
    # a later drop below the threshold does not hold again
    observe[400] = {"val/seq_acc": 0.0}
    assert trajectory(lambda o: hold(o, decay_steps=200, min_lr_ratio=0.1), 600, observe) == pytest.approx(lrs)


def test_hold_on_a_loss_and_the_default_decay_length():
    observe = {100: {"val/loss": 0.92}, 200: {"val/loss": 0.5}}  # mode min: release at loss <= 0.6
    lrs = trajectory(lambda o: hold(o, monitor="val/loss", mode="min", threshold=0.6), 1000, observe)
    assert lrs[199] == pytest.approx(PEAK) and lrs[200] == pytest.approx(PEAK)
    assert lrs[600] == pytest.approx(PEAK * 0.5)  # decay over the 800 steps left: half-way at 600
    assert lrs[999] < 1e-4


def test_hold_never_released_stays_at_the_peak_unless_max_hold_steps():
    observe = {100: {"val/seq_acc": 0.1}}
    assert trajectory(lambda o: hold(o), 500, observe)[10:] == pytest.approx([PEAK] * 490)
    lrs = trajectory(lambda o: hold(o, max_hold_steps=300, decay_steps=100), 500, observe)
    assert lrs[299] == pytest.approx(PEAK) and lrs[350] == pytest.approx(PEAK * 0.5) and lrs[400] == 0.0


def test_hold_state_dict_round_trip_resumes_the_same_trajectory():
    """A scheduler rebuilt from a checkpointed state (after the release) continues exactly."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    scheduler = hold(optimizer, decay_steps=100)
    for step in range(150):
        if step == 120:
            scheduler.observe({"val/seq_acc": 0.9})
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    assert state["release_step"] == 120 and state["last_epoch"] == 150
    reference = [scheduler.get_last_lr()[0]]
    for _ in range(80):
        optimizer.step()
        scheduler.step()
        reference.append(scheduler.get_last_lr()[0])

    restored_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    restored = hold(restored_optimizer, decay_steps=100)
    restored.load_state_dict(state)
    resumed = [restored.get_last_lr()[0]]
    for _ in range(80):
        restored_optimizer.step()
        restored.step()
        resumed.append(restored.get_last_lr()[0])
    assert resumed == pytest.approx(reference)
    assert reference[0] < PEAK and reference[-1] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "up"}, "optim.scheduler.mode='up' must be 'max'"),
        ({"min_lr_ratio": 2.0}, r"optim.scheduler.min_lr_ratio=2.0 must be in \[0, 1\]"),
        ({"decay_steps": 0}, "optim.scheduler.decay_steps=0 must be >= 1"),
        ({"max_hold_steps": -1}, "optim.scheduler.max_hold_steps=-1 must be >= 0"),
        ({"warmup_steps": -1}, "optim.scheduler.warmup_steps=-1 must be >= 0"),
        ({"monitor": ""}, "optim.scheduler.monitor='' must name a validation metric"),
    ],
)
def test_bad_hold_settings_name_the_key(kwargs, message):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    with pytest.raises(ValueError, match=message):
        hold(optimizer, **kwargs)


def test_an_unknown_monitor_is_a_clear_error_at_the_first_validation():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    scheduler = hold(optimizer, monitor="val/sequence_accuracy")
    with pytest.raises(ValueError, match=r"monitor='val/sequence_accuracy' is not a validation metric.*val/seq_acc"):
        scheduler.observe({"val/seq_acc": 0.1, "val/loss": 1.0, "train/loss": 1.0})


def test_a_training_run_releases_the_hold_at_a_validation_and_checkpoints_it(make_cfg, tmp_path):
    """Wiring: the module's ScheduleObserver hands the validation metrics to the schedule during fit,
    before last.ckpt is written at the end of that validation."""
    from symlit.training.train import train

    cfg = make_cfg(
        "experiment=addition",
        "optim=hold_until_improved",
        "optim.scheduler.warmup_steps=0",
        "optim.scheduler.monitor=val/loss",
        "optim.scheduler.mode=min",
        "optim.scheduler.threshold=1000",  # the first validation passes
        "optim.scheduler.decay_steps=10",
        "data.task.n_train=400",
        "data.task.n_valid=16",
        "data.task.n_test=16",
        "data.task.ood={}",
        "data.batch_size=16",
        "trainer.max_steps=25",
        "trainer.max_epochs=-1",
        "trainer.val_check_interval=12",
        "trainer.check_val_every_n_epoch=null",
        "callbacks.last_checkpoint.every_n_train_steps=null",  # last.ckpt at the end of each validation
        "module.decode_max_len=8",
        "logger=csv",
    )
    train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    scheduler = state["lr_schedulers"][0]
    assert scheduler["release_step"] == 12  # the sanity check's validation does not count
    assert scheduler["last_epoch"] == 25 and scheduler["_last_lr"][0] < 1e-3 * 0.1  # near the floor 10 steps on
