"""Console entry points that answer ``--help`` without importing torch (the help is Hydra's, from
``conf/train.yaml``'s ``hydra.help``); everything else goes to the real commands."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from symlit.config import config_dir

HELP_FLAGS = {"-h", "--help", "--hydra-help"}


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _train_help(cfg: DictConfig) -> None:  # Hydra prints the help and exits before calling this
    pass


def train() -> None:
    """``symlit-train``."""
    if HELP_FLAGS & set(sys.argv[1:]):
        _train_help()
        return
    from symlit.train import main

    main()
