"""A run killed with SIGKILL mid-epoch and rerun with the same command ends where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from signal_at_step import KILLABLE_RUN, assert_same_last_checkpoint, clean_run, killed_run, resumed_run

COMMAND = ["experiment=addition", *KILLABLE_RUN, "run_name=resume"]


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(tmp_path):
    run = Path("outputs/addition/resume")

    killed_root = killed_run(tmp_path, COMMAND)
    assert checkpoint(killed_root / run / "checkpoints" / "last.ckpt")["global_step"] == 200
    assert not (killed_root / run / "metrics.json").exists()

    resumed_run(killed_root, COMMAND)  # the same command; a resumed process sends no signal
    clean_root = clean_run(tmp_path, COMMAND)
    assert_same_last_checkpoint(killed_root / run, clean_root / run, 376)
