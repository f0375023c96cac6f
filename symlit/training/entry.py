"""``symlit-train``'s console entry: checks the command line before anything imports torch."""

from __future__ import annotations

import sys

from symlit.core.cli import HELP_FLAGS, hydra_command
from symlit.core.config import config_dir


def train() -> None:
    """``symlit-train``: its ``--help`` is answered without importing torch."""
    argv = sys.argv[1:]
    if HELP_FLAGS & set(argv):
        import hydra

        hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")(lambda cfg: None)()
        return

    def run() -> None:
        from symlit.training.train import main  # torch is imported only once the command line is known to be good

        main()

    hydra_command("symlit-train", "train", run, argv)
