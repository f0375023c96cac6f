"""Validation curves of several runs in one figure, from their ``metrics.csv`` (``logger=[wandb,csv]``).

    python experiments/curves.py OUT.png METRIC LABEL=RUN_DIR [LABEL=RUN_DIR ...]

e.g. ``python experiments/curves.py experiments/figures/addition_4x2.png val/seq_acc
scratchpad=outputs/addition_4x2_digits_scratchpad/x plain=outputs/.../y``. Each run directory's
``csv/metrics.csv`` (or a CSV path given directly) gives ``METRIC`` against ``step``; the x axis is
optimizer steps, the y axis the metric in percent.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def read(path: Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every row of a metrics CSV that has ``metric``."""
    csv_path = path if path.suffix == ".csv" else path / "csv" / "metrics.csv"
    if not csv_path.is_file():
        raise SystemExit(f"{csv_path}: no metrics CSV (train with logger=[wandb,csv])")
    with csv_path.open() as f:
        rows = [(int(float(r["step"])), float(r[metric])) for r in csv.DictReader(f) if r.get(metric)]
    if not rows:
        raise SystemExit(f"{csv_path}: no values of {metric}")
    return rows


def main(png: str, metric: str, runs: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the legend goes below the axes once it would hide curves (more than four runs)
    below = len(runs) > 4
    fig, ax = plt.subplots(figsize=(6.5, 4 + 0.22 * len(runs) * below), dpi=110)
    for run in runs:
        label, _, path = run.partition("=")
        points = read(Path(path), metric)
        ax.plot([s for s, _ in points], [100 * v for _, v in points], marker="o", markersize=3, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if below:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize="small")
    else:
        ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    print(png)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
