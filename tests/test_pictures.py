"""Pictures of an evaluation: they show the numbers ``symlit-eval`` wrote, and known numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from review_sweep import LRS, run_dir

from symlit.models.checkpoint import load_checkpoint
from symlit.review.plots import eval_figures, plot_lengths, read_predictions, reliability_bins

pytestmark = pytest.mark.xdist_group("review_sweep")  # pytest-xdist: the session-scoped sweep is built once


def test_eval_pictures_show_the_eval_numbers(sweep):
    eval_dir = run_dir(sweep, LRS[0]) / "eval" / "best-test-beam3"
    paths = eval_figures(eval_dir)
    assert all(p.stat().st_size > 10_000 for p in paths.values())
    summary = json.loads((eval_dir / "eval.json").read_text())["metrics"]
    from symlit.review.plots import plot_bucket_accuracy, plot_reliability

    fig = plot_bucket_accuracy(summary)
    ax = fig.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches]
    want = [round(b[c], 6) for c in ("seq_acc", "top1_acc", "acc_at_3") for b in summary["by_bucket"].values()]
    assert heights == want
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(summary["by_bucket"])
    preds = read_predictions(eval_dir / "predictions.jsonl")
    bins = reliability_bins(preds)
    assert sum(b["n"] for b in bins) == len(preds) == summary["n"]
    correct = sum(p["greedy_verdict"] == "correct" for p in preds)
    assert sum(b["n"] * b["accuracy"] for b in bins) == pytest.approx(correct)
    for b in bins:
        assert b["lo"] <= b["confidence"] <= b["hi"]
    # confidence is the model's probability of its greedy answer
    assert sum(b["n"] * b["confidence"] for b in bins) == pytest.approx(sum(math.exp(p["greedy_score"]) for p in preds))
    fig = plot_reliability(preds, summary)
    table = fig.axes[1].tables[0]
    cells = [
        [table[r, c].get_text().get_text() for c in range(3)]
        for r in range(1, len(summary["confidence"]["by_agreement"]) + 1)
    ]
    assert cells == [
        [str(r["agreement"]), str(r["n"]), f"{r['accuracy']:.3f}"] for r in summary["confidence"]["by_agreement"]
    ]


def test_pictures_of_known_numbers(tmp_path):
    """Bars and reliability bins equal numbers computed by hand (the tiny model's are all zero)."""
    from symlit.evaluation.decoding import DecodeConfig
    from symlit.evaluation.report import summarize
    from symlit.evaluation.scoring import Prediction
    from symlit.review.plots import plot_bucket_accuracy, plot_reliability

    # (bucket, P(greedy answer), greedy verdict, beam verdicts, agreement)
    made = [
        ("digits=1", 0.95, "correct", ["correct", "wrong"], 2),
        ("digits=1", 0.91, "correct", ["correct", "wrong"], 1),
        ("digits=1", 0.35, "wrong", ["wrong", "correct"], 1),
        ("digits=2", 0.55, "correct", ["correct", "wrong"], 1),
        ("digits=2", 0.52, "wrong", ["wrong", "wrong"], 1),
        ("digits=2", 0.05, "wrong", ["wrong", "wrong"], 2),
    ]
    preds = [
        Prediction(
            "s",
            "t",
            bucket=b,
            greedy="h",
            greedy_score=math.log(p),
            greedy_verdict=v,
            hypotheses=["h", "h2"],
            scores=[math.log(p), -5.0],
            verdicts=vs,
            agreement=a,
        )
        for b, p, v, vs, a in made
    ]
    summary = summarize(preds, DecodeConfig(strategy="beam", beam_size=2))
    fig = plot_bucket_accuracy(summary, tmp_path / "buckets.png")
    heights = [round(p.get_height(), 4) for p in fig.axes[0].patches]
    assert heights == [round(2 / 3, 4), round(1 / 3, 4), round(2 / 3, 4), round(1 / 3, 4), 1.0, round(1 / 3, 4)]
    bins = reliability_bins(preds)
    assert [(b["lo"], b["n"], b["accuracy"]) for b in bins] == [
        (0.0, 1, 0.0),
        (0.3, 1, 0.0),
        (0.5, 2, 0.5),
        (0.9, 2, 1.0),
    ]
    assert bins[2]["confidence"] == pytest.approx(0.535)
    fig = plot_reliability(preds, summary, tmp_path / "reliability.png")
    ece = (0.05 + 0.35 + 2 * abs(0.5 - 0.535) + 2 * abs(1 - 0.93)) / 6
    assert f"ECE {ece:.3f}" in fig.axes[0].get_title()
    table = fig.axes[1].tables[0]
    assert [[table[r, c].get_text().get_text() for c in range(3)] for r in (1, 2)] == [
        ["1", "4", "0.500"],
        ["2", "2", "0.500"],
    ]


def test_length_histograms_of_the_dataset_and_a_wandb_image(ckpt, tmp_path):
    from symlit.data.datamodule import load_or_build

    loaded = load_checkpoint(ckpt)
    data = load_or_build(loaded.task, ckpt.parents[4] / "data")
    path = tmp_path / "lengths.png"
    fig = plot_lengths(data, loaded.tokenizer, path)
    assert path.stat().st_size > 10_000
    src_ax = fig.axes[0]
    labels = [t.get_text() for t in src_ax.get_legend().get_texts()]
    assert [lab.split(" ")[0] for lab in labels] == list(data)
    first = next(iter(data))
    assert f"n={data[first].num_rows}," in labels[0]
    # the first split's bars are the fraction of its sources of each length (unit-width bins)
    lengths = np.array([len(ids) for ids in loaded.tokenizer.encode_batch(data[first]["source"])])
    bars = src_ax.containers[0]
    assert sum(round(bar.get_height() * len(lengths)) for bar in bars) == len(lengths)
    for bar in bars:
        centre = round(bar.get_x() + bar.get_width() / 2)
        assert bar.get_height() == pytest.approx((lengths == centre).mean())
    import wandb

    assert wandb.Image(fig).image is not None  # the figure can be logged as a W&B image
