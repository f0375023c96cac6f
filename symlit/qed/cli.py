"""The command-line options and closing line that ``python -m symlit.qed`` and ``python -m symlit.qcd`` share."""

from __future__ import annotations

import argparse
import sys
import time


def add_generation_options(ap: argparse.ArgumentParser) -> None:
    """``--level``, ``--timeout``, ``--no-identical-factor`` and ``--workers``."""
    ap.add_argument("--level", default="diagram", choices=["diagram", "process"])
    ap.add_argument("--timeout", type=float, default=10.0, help="CPU seconds for sympy.factor per expression")
    ap.add_argument(
        "--no-identical-factor",
        action="store_true",
        help="omit the 1/n! for identical final particles that MARTY includes",
    )
    ap.add_argument("--workers", type=int, default=0)


def report(n_processes: int, n_rows: int, n_unfactored: int, started: float, out: str) -> None:
    """The closing line on stderr: counts, seconds since ``started`` (``time.perf_counter``) and the file."""
    print(
        f"{n_processes} processes, {n_rows} rows, {n_unfactored} unfactored, "
        f"{time.perf_counter() - started:.1f} s -> {out}",
        file=sys.stderr,
    )
