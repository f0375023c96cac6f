"""A real 2-job ``symlit-train -m`` sweep (tiny addition runs, W&B offline) and a real ``symlit-eval``
with beam search on each job: what the review tests (compare, W&B runs, pictures, inspect, predict)
look at. ``tests/conftest.py`` builds it once per session (fixtures ``sweep`` and ``ckpt``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from wandb_records import OfflineRun, read_run

REPO = Path(__file__).resolve().parents[1]
LRS = ("0.002", "0.004")
EPOCHS = 2


def sweep_env(root: Path) -> dict[str, str]:
    """The environment of a command run in ``root``: this checkout's symlit, W&B offline."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SYMLIT_ROOT": str(root),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }


def run_python(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python *args`` in ``root``; with ``check``, a failure shows the end of its output."""
    proc = subprocess.run(
        [sys.executable, *args], cwd=root, env=sweep_env(root), capture_output=True, text=True, timeout=900, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def build_sweep(fresh: Path) -> Path:
    """A real 2-job multirun (two learning rates, W&B offline) in ``fresh`` and symlit-eval (beam 3)
    on the best checkpoint path each job printed.

    ``SYMLIT_TEST_REVIEW_ROOT=<dir>`` keeps the sweep in ``<dir>`` instead and reuses it when it is
    complete (for iterating on these tests; the suite itself always starts from nothing).
    """
    keep = os.environ.get("SYMLIT_TEST_REVIEW_ROOT")
    root = Path(keep) if keep else fresh
    sweep_dir = root / "outputs" / "addition"
    trained, evaluated = sweep_dir / "train-done", sweep_dir / "eval-done"
    if keep and evaluated.exists():
        return sweep_dir
    if not trained.exists():
        proc = run_python(
            root,
            "-m",
            "symlit.training.train",
            "-m",
            f"optim.optimizer.lr={','.join(LRS)}",
            "logger=wandb",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            f"trainer.max_epochs={EPOCHS}",
            "data.task.n_train=1000",
            "data.task.n_valid=40",
            "data.task.n_test=40",
            "data.task.ood.three_digits.n=20",
            "optim.scheduler.warmup_steps=10",
        )
        printed = re.findall(r"^best checkpoint: (.+)$", proc.stdout, flags=re.MULTILINE)
        (sweep_dir / "printed.txt").write_text("\n".join(printed))
        trained.touch()
    # symlit-eval on each path training printed, as printed ('=' and ',' in it, unquoted)
    for printed in (sweep_dir / "printed.txt").read_text().splitlines():
        run_python(root, "-m", "symlit.review.evaluate", f"ckpt={printed}", "decode.beam_size=3", "verify.workers=0")
    evaluated.touch()
    return sweep_dir


def run_dir(sweep: Path, lr: str) -> Path:
    """The job directory of the sweep whose overrides set ``optim.optimizer.lr=lr``."""
    (found,) = [
        p.parents[1] for p in sweep.glob("*/.hydra/overrides.yaml") if f"optim.optimizer.lr={lr}" in p.read_text()
    ]
    return found


def wandb_runs(job: Path) -> list[OfflineRun]:
    """Every offline W&B run file of a job directory (training, and the sessions that resumed it)."""
    return [read_run(p) for p in sorted(job.glob("wandb/offline-run-*"))]


def training_run(job: Path) -> OfflineRun:
    """The W&B run of a job's training (the one with validation curves)."""
    (run,) = [r for r in wandb_runs(job) if "val/seq_acc" in r.history]
    return run


def wandb_table(job: Path, key: str) -> dict:
    """The last logged version of a W&B table (files ``<key>_<step>_<hash>.table.json``)."""
    paths = job.glob(f"wandb/offline-run-*/files/media/table/{key}_*.table.json")
    return json.loads(max(paths, key=lambda p: int(p.name.split("_")[-2])).read_text())
