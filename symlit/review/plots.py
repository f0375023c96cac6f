"""Pictures of an evaluation and of a dataset, drawn with matplotlib.

Every function saves a PNG (when given a path) and returns the ``Figure``, so the caller can also
log it: ``wandb.log({"eval/reliability": wandb.Image(fig)})``.

* :func:`plot_bucket_accuracy`: accuracy per bucket (``Task.bucket``) from an ``eval.json`` summary;
* :func:`plot_reliability`: a reliability diagram (the model's probability of its greedy answer
  against how often that answer is right) next to the beam-agreement table;
* :func:`plot_lengths`: source and target length histograms of dataset splits;
* :func:`eval_figures`: the first two for an evaluation directory written by ``symlit-eval``
  (``python -m symlit.review.plots <eval dir>``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed (servers, CI, SLURM nodes)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

DPI = 120


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)  # the returned figure stays usable (savefig, wandb.Image); pyplot forgets it
    return fig


def plot_bucket_accuracy(summary: Mapping[str, Any], path: str | Path | None = None, title: str = "") -> Figure:
    """Bars of accuracy per bucket (greedy, and beam top-1 / @k when present) with each bucket's size.

    ``summary`` is the ``metrics`` of ``eval.json`` (:func:`symlit.evaluation.report.summarize`).
    """
    buckets = summary.get("by_bucket") or {}
    if not buckets:
        raise ValueError("the summary has no per-bucket table (by_bucket); is it the 'metrics' of an eval.json?")
    names = list(buckets)
    columns = [c for c in next(iter(buckets.values())) if c != "n"]  # seq_acc, top1_acc, acc_at_<k>
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) * max(1, len(columns)) / 2 + 2), 4))
    width = 0.8 / len(columns)
    x = np.arange(len(names))
    for i, column in enumerate(columns):
        values = [buckets[name][column] for name in names]
        label = {"seq_acc": "greedy", "top1_acc": "beam top-1"}.get(column, column.replace("acc_at_", "any of top "))
        bars = ax.bar(x + (i - (len(columns) - 1) / 2) * width, values, width, label=label)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, [f"{name}\n(n={buckets[name]['n']})" for name in names], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("accuracy (verified)")
    ax.set_xlabel("bucket")
    ax.set_title(title or f"Accuracy by bucket ({summary.get('n', '?')} inputs)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _field(p: Any, name: str) -> Any:
    return p[name] if isinstance(p, Mapping) else getattr(p, name)


def reliability_bins(predictions: Sequence[Any], bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of the greedy answer's probability ``exp(score)``: mean confidence,
    accuracy and count per non-empty bin. ``predictions`` are :class:`~symlit.evaluation.scoring.Prediction`
    objects or the rows of ``predictions.jsonl``."""
    conf = np.array([math.exp(_field(p, "greedy_score")) for p in predictions])
    ok = np.array([_field(p, "greedy_verdict") == "correct" for p in predictions], dtype=float)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = index == b
        if sel.any():
            out.append(
                {
                    "lo": b / bins,
                    "hi": (b + 1) / bins,
                    "confidence": float(conf[sel].mean()),
                    "accuracy": float(ok[sel].mean()),
                    "n": int(sel.sum()),
                }
            )
    return out


def plot_reliability(
    predictions: Sequence[Any],
    summary: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
    bins: int = 10,
    title: str = "",
) -> Figure:
    """Reliability diagram of the greedy answers, with the beam-agreement table beside it.

    Confidence is the model's probability of its greedy answer, ``exp`` of the sum of token
    log-probabilities. A calibrated model's bars sit on the diagonal; the expected calibration
    error (ECE, the count-weighted gap) is in the title. The table (from ``summary``'s
    ``confidence.by_agreement``) gives top-1 accuracy by beam agreement, a confidence signal that
    needs no reference answer; it is empty for greedy-only evaluations.
    """
    if not predictions:
        raise ValueError("no predictions to draw a reliability diagram from")
    rows = reliability_bins(predictions, bins)
    n = sum(r["n"] for r in rows)
    ece = sum(r["n"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / n
    fig, (ax, side) = plt.subplots(1, 2, figsize=(10, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="calibrated")
    ax.bar(
        [r["lo"] for r in rows],
        [r["accuracy"] for r in rows],
        width=1 / bins,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy in bin",
    )
    ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o", color="C3", label="mean confidence")
    for r in rows:
        ax.annotate(f"n={r['n']}", (r["lo"] + 0.5 / bins, min(r["accuracy"], 0.93) + 0.02), ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence: P(greedy answer) under the model")
    ax.set_ylabel("accuracy (verified)")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or f"Reliability of greedy answers ({n} inputs, ECE {ece:.3f})")
    side.axis("off")
    agreement = ((summary or {}).get("confidence") or {}).get("by_agreement") or []
    if agreement:
        cells = [[str(r["agreement"]), str(r["n"]), f"{r['accuracy']:.3f}"] for r in agreement]
        table = side.table(
            cellText=cells, colLabels=["agreement", "n", "top-1 accuracy"], loc="center", cellLoc="center"
        )
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1, 1.5)
        side.set_title(
            "Top-1 accuracy by beam agreement\n(top-k hypotheses the verifier accepts\nwith the top-1 as reference)",
            fontsize=9,
        )
    else:
        side.text(0.5, 0.5, "no beam agreement\n(greedy-only evaluation)", ha="center", va="center")
    return _save(fig, path)


def plot_lengths(
    splits: Mapping[str, Any] | Any,
    tokenizer: Any = None,
    path: str | Path | None = None,
    title: str = "",
) -> Figure:
    """Histograms of source and target lengths in tokens, one overlaid series per split.

    ``splits`` is a ``DatasetDict`` (or a mapping of names to splits, or one split) with ``source``
    and ``target`` columns; lengths are counted with ``tokenizer`` (a
    :class:`~symlit.data.tokenizer.Seq2SeqTokenizer`) or, without one, as whitespace-separated tokens.
    """
    if not isinstance(splits, Mapping):
        splits = {"split": splits}
    if not splits:
        raise ValueError("no splits to draw lengths of")

    def lengths(texts: list[str]) -> np.ndarray:
        if tokenizer is not None:
            return np.array([len(ids) for ids in tokenizer.encode_batch(texts)])
        return np.array([len(t.split()) for t in texts])

    data = {name: {col: lengths(list(split[col])) for col in ("source", "target")} for name, split in splits.items()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, col in zip(axes, ("source", "target")):
        series = [d[col] for d in data.values()]
        lo, hi = min(int(x.min()) for x in series), max(int(x.max()) for x in series)
        edges = np.arange(lo, hi + 2) - 0.5 if hi - lo <= 60 else np.linspace(lo, hi + 1, 41)
        # one group of bars per length bin, a bar per split (side by side, not overlaid)
        ax.hist(
            series,
            bins=edges,
            density=True,
            label=[f"{name} (n={len(x)}, mean {x.mean():.1f}, max {x.max()})" for name, x in zip(data, series)],
        )
        ax.set_xlabel(f"{col} length (tokens{'' if tokenizer is not None else ', whitespace-separated'})")
        ax.set_ylabel("fraction of examples")
        ax.set_title(f"{col.capitalize()} lengths")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend above the bars
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``predictions.jsonl`` written by ``symlit-eval``."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def eval_figures(eval_dir: str | Path) -> dict[str, Path]:
    """Draw ``accuracy_by_bucket.png`` and ``reliability.png`` into an evaluation directory
    (``eval.json`` and ``predictions.jsonl`` of ``symlit-eval``); returns the written paths."""
    eval_dir = Path(eval_dir)
    summary_path, preds_path = eval_dir / "eval.json", eval_dir / "predictions.jsonl"
    for p in (summary_path, preds_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist; pass a directory written by symlit-eval")
    saved = json.loads(summary_path.read_text())
    summary = saved["metrics"]
    where = f"{saved.get('split', '?')} split, {Path(str(saved.get('checkpoint', '?'))).name}"
    out = {"accuracy_by_bucket": eval_dir / "accuracy_by_bucket.png", "reliability": eval_dir / "reliability.png"}
    plot_bucket_accuracy(
        summary, out["accuracy_by_bucket"], title=f"Accuracy by bucket ({summary['n']} inputs, {where})"
    )
    plot_reliability(read_predictions(preds_path), summary, out["reliability"])
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m symlit.review.plots EVAL_DIR...``: draw the evaluation pictures of each directory."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(main.__doc__)
        raise SystemExit(0 if args else 2)
    for directory in args:
        try:
            for path in eval_figures(directory).values():
                print(path)
        except (FileNotFoundError, ValueError, KeyError) as err:
            raise SystemExit(f"symlit.review.plots: {err}") from None


if __name__ == "__main__":
    main()
