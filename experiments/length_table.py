"""Table and plot of `experiment=length_generalization` runs (one per position scheme / architecture).

    python experiments/length_table.py outputs/length_generalization experiments/figures/length_generalization.png

Reads every finished run directory's ``.hydra/config.yaml`` (architecture, position scheme, loops),
``metrics.json`` (exact match on the in-distribution test split and on the ``d<N>`` splits, whose
operands both have N digits); prints a Markdown table and plots exact match against operand
length, one line per run, with the training lengths shaded.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf


def label(run: Path) -> str:
    """``decoder-only abacus, 12 min``, ``decoder-only abacus, 2 layers x 2 loops, 12 min``, ..."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    model = cfg.model
    arch = "decoder-only" if model._target_.endswith("CausalTransformer") else "encoder-decoder"
    name = f"{arch} {model.positions}"
    if model.get("n_loops", 1) > 1:
        name += f", {model.n_layers} layers x {model.n_loops} loops"
    days, hours, minutes, _ = (int(part) for part in str(cfg.trainer.max_time).split(":"))
    return f"{name}, {(days * 24 + hours) * 60 + minutes} min"


def trained_steps(run: Path) -> int:
    """Optimizer steps the run trained for (its last checkpoint's ``global_step``)."""
    import torch

    return int(torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"])


def collect(sweep_dir: Path) -> dict[str, dict[str, float]]:
    """``label -> {"test": acc, "d11": acc, ...}`` of every finished run under ``sweep_dir``."""
    table = {}
    for run in sorted(sweep_dir.iterdir()):
        if not (run / "metrics.json").is_file():
            continue
        metrics = json.loads((run / "metrics.json").read_text())["metrics"]
        row = {"test": metrics["test/seq_acc"], "steps": trained_steps(run)}
        for key, value in metrics.items():
            if m := re.fullmatch(r"test/(d\d+)/seq_acc", key):
                row[m.group(1)] = value
        table[label(run)] = row
    return table


def main(sweep_dir: str, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = collect(Path(sweep_dir))
    lengths = sorted({k for row in table.values() for k in row if k[0] == "d"}, key=lambda k: int(k[1:]))
    print(
        "| model, time budget | steps | test (1..10 digits) | "
        + " | ".join(f"{int(k[1:])} digits" for k in lengths)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(lengths))
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    ax.axvspan(0.5, 10.5, color="0.9", label="training lengths")
    for name, row in sorted(table.items(), key=lambda item: -item[1]["test"]):
        cells = [f"{row['steps']:,}", f"{100 * row['test']:.1f} %"] + [
            f"{100 * row[k]:.1f} %" if k in row else "-" for k in lengths
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
        ax.plot(
            [5.5] + [int(k[1:]) for k in lengths],
            [100 * row["test"]] + [100 * row.get(k, 0) for k in lengths],
            marker="o",
            label=name,
        )
    ax.scatter([20, 25], [95, 50], marker="*", s=120, color="black", zorder=3, label="targets")
    ax.set_xlabel("operand length (digits; 5.5 = the 1..10-digit test split)")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("addition trained on 1..10 digits: length generalisation")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
