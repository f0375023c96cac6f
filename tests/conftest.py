"""Shared fixtures: compose the real Hydra configs into a temporary workspace."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from symlit.config import config_dir

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides)``: the composed ``train`` config, writing only under ``tmp_path``."""

    def _make(*overrides: str, run_dir: Path | None = None) -> DictConfig:
        base = [
            f"paths.root_dir={tmp_path}",
            f"paths.run_dir={run_dir or tmp_path / 'run'}",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
        ]
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose("train", overrides=[*base, *overrides])

    return _make
