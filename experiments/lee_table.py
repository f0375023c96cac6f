"""Table and plot of a `symlit-train -m experiment=lee_reversed` or `experiment=lee_table` sweep (Lee et al. 2024).

    python experiments/lee_table.py outputs/lee_reversed experiments/figures/lee_reversed.png

Reads every run directory's ``.hydra/config.yaml`` (output format, training-set size) and
``metrics.json`` (test exact match), prints a Markdown table and plots accuracy against the number
of training examples, one line per output format.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf


def collect(sweep_dir: Path) -> dict[tuple[str, int], float]:
    """``(format, n_train) -> test/seq_acc`` of every finished run under ``sweep_dir``."""
    table = {}
    for run in sorted(sweep_dir.iterdir()):
        if not (run / "metrics.json").is_file():
            continue
        task = OmegaConf.load(run / ".hydra" / "config.yaml").data.task
        fmt = task.get("scratchpad") or ("reversed" if task.reverse_output else "plain")
        table[fmt, int(task.n_train)] = json.loads((run / "metrics.json").read_text())["metrics"]["test/seq_acc"]
    return table


def main(sweep_dir: str, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = collect(Path(sweep_dir))
    sizes = sorted({n for _, n in table})
    print("| output | " + " | ".join(f"{n:,}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for fmt in ("plain", "reversed", "lee_simplified", "lee_detailed"):
        if not any(f == fmt for f, _ in table):
            continue
        print(
            f"| {fmt} | "
            + " | ".join(f"{100 * table[fmt, n]:.1f} %" if (fmt, n) in table else "-" for n in sizes)
            + " |"
        )
        points = [(n, 100 * table[fmt, n]) for n in sizes if (fmt, n) in table]
        if points:
            ax.plot(*zip(*points), marker="o", label=f"{fmt} output")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test exact match (%)")
    ax.set_ylim(0, 100)
    ax.set_title("3-digit addition, equal step budget")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
