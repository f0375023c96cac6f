"""Evaluation reports: the metrics of ``eval.json`` (:func:`summarize`) and the Markdown report
(:func:`render_report`) of ``symlit-eval``: greedy and n-best accuracy, accuracy per bucket, accuracy
against confidence, timeouts and the first failures. Metric names are those of :mod:`symlit.evaluation.scoring`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from symlit.evaluation.decoding import DecodeConfig
from symlit.evaluation.scoring import SEQ_ACC, TOP1_ACC, Prediction, acc_at, accuracies, nbest_size, rate, wants_nbest


def _confidence_tables(preds: list[Prediction], use_nbest: bool, bins: int = 5) -> dict[str, Any]:
    """Accuracy of the top hypothesis against its score (quantile bins), coverage and agreement."""
    rows = [
        (
            p.scores[0] if use_nbest and p.scores else p.greedy_score,
            p.top1_correct if use_nbest else p.greedy_correct,
            p,
        )
        for p in preds
    ]
    rows.sort(key=lambda r: -r[0])
    by_score = []
    for b in range(bins):
        chunk = rows[b * len(rows) // bins : (b + 1) * len(rows) // bins]
        if chunk:
            by_score.append(
                {
                    "score_max": chunk[0][0],
                    "score_min": chunk[-1][0],
                    "n": len(chunk),
                    "accuracy": rate(sum(r[1] for r in chunk), len(chunk)),
                }
            )
    coverage = []
    for fraction in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        top = rows[: max(1, round(fraction * len(rows)))] if rows else []
        coverage.append({"coverage": fraction, "n": len(top), "accuracy": rate(sum(r[1] for r in top), len(top))})
    by_agreement = []
    if use_nbest:
        groups: dict[int, list[bool]] = defaultdict(list)
        for _, ok, p in rows:
            groups[p.agreement].append(ok)
        by_agreement = [
            {"agreement": a, "n": len(v), "accuracy": rate(sum(v), len(v))} for a, v in sorted(groups.items())
        ]
    return {"by_score": by_score, "coverage": coverage, "by_agreement": by_agreement}


def summarize(preds: list[Prediction], config: DecodeConfig) -> dict[str, Any]:
    """The metrics of ``eval.json``: ``greedy.seq_acc``, ``nbest.top1_acc`` and ``nbest.acc_at_<k>``
    (the names training logs), verdict counts, timeouts, per-bucket accuracies, confidence tables."""
    n = len(preds)
    use_nbest = any(p.hypotheses or p.verdicts for p in preds) and wants_nbest(config)
    k = nbest_size(config) if use_nbest else None
    top = accuracies(preds, k)
    greedy_verdicts = Counter(p.greedy_verdict for p in preds)
    summary: dict[str, Any] = {"n": n, "greedy": {SEQ_ACC: top[SEQ_ACC], "verdicts": dict(greedy_verdicts)}}
    nbest_verdicts: Counter = Counter(v for p in preds for v in p.verdicts)
    if k is not None:
        summary["nbest"] = {
            "strategy": config.strategy,
            "k": k,
            TOP1_ACC: top[TOP1_ACC],
            acc_at(k): top[acc_at(k)],
            "verdicts": dict(nbest_verdicts),
        }
    summary["timeouts"] = greedy_verdicts["timeout"] + nbest_verdicts["timeout"]
    buckets: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        buckets[p.bucket].append(p)
    summary["by_bucket"] = {
        name: {"n": len(group), **accuracies(group, k)}
        for name, group in sorted(buckets.items(), key=lambda kv: bucket_order(kv[0]))
    }
    summary["confidence"] = _confidence_tables(preds, use_nbest)
    extra_names = sorted({name for p in preds for name in p.extra})
    if extra_names:
        summary["scores"] = {name: sum(p.extra.get(name, 0.0) for p in preds) / n for name in extra_names}
    return summary


def bucket_order(name: str) -> tuple:
    """Sort key of bucket names in natural order: ``digits=2`` before ``digits=10``."""
    head, _, tail = name.rpartition("=")
    return (head, int(tail), "") if tail.lstrip("-").isdigit() else (name, 0, name)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats with 4 decimals (3 significant digits when tiny or huge)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(summary: dict[str, Any], preds: list[Prediction], meta: dict[str, Any], n_failures: int = 20) -> str:
    """The Markdown report of an evaluation."""
    nb = summary.get("nbest")
    out = [f"# Evaluation of `{meta['checkpoint']}`", ""]
    out += [
        f"- split: `{meta['split']}` ({summary['n']} inputs), task `{meta['task']}`",
        f"- decoding: {meta['decode']}",
        f"- verifier: {meta['verify']}",
        f"- timeouts: {summary['timeouts']}",
        "",
    ]
    out += ["## Accuracy", ""]
    rows = [["greedy", summary["greedy"][SEQ_ACC], json.dumps(summary["greedy"]["verdicts"])]]
    if nb:
        k = nb["k"]
        rows += [
            [f"{nb['strategy']} top-1", nb[TOP1_ACC], ""],
            [f"{nb['strategy']}@{k} (any of top {k})", nb[acc_at(k)], json.dumps(nb["verdicts"])],
        ]
    out += [markdown_table(["decoding", "accuracy", "verdicts"], rows), ""]
    if summary.get("scores"):
        out += ["Task scores (greedy): " + ", ".join(f"{k} = {v:.4f}" for k, v in summary["scores"].items()), ""]
    out += ["## By bucket", ""]
    cols = list(next(iter(summary["by_bucket"].values()), {}).keys())
    out += [
        markdown_table(["bucket", *cols], [[name, *(v[c] for c in cols)] for name, v in summary["by_bucket"].items()]),
        "",
    ]
    conf = summary["confidence"]
    which = "top-1 hypothesis" if nb else "greedy hypothesis"
    out += [
        "## Confidence",
        "",
        f"Accuracy of the {which} by its score (sum of log-probabilities; "
        "length-normalised for beam search), most confident first:",
        "",
    ]
    out += [
        markdown_table(
            ["score from", "score to", "n", "accuracy"],
            [[r["score_max"], r["score_min"], r["n"], r["accuracy"]] for r in conf["by_score"]],
        ),
        "",
    ]
    out += ["Keeping only the most confident predictions:", ""]
    out += [
        markdown_table(
            ["coverage", "n", "accuracy"], [[r["coverage"], r["n"], r["accuracy"]] for r in conf["coverage"]]
        ),
        "",
    ]
    if conf["by_agreement"]:
        out += [
            "Beam agreement: how many of the top-k hypotheses the verifier accepts with the top-1 as reference "
            "(needs no reference answer):",
            "",
        ]
        out += [
            markdown_table(
                ["agreement", "n", "accuracy"], [[r["agreement"], r["n"], r["accuracy"]] for r in conf["by_agreement"]]
            ),
            "",
        ]
    failures = [p for p in preds if not (p.top1_correct if nb else p.greedy_correct)][:n_failures]
    out += [f"## First {len(failures)} failures", ""]
    for p in failures:
        out += [
            f"- **input** `{p.source}`",
            f"  - target `{p.target}`",
            f"  - greedy `{p.greedy}` ({p.greedy_verdict}, {p.greedy_score:.3f})",
        ]
        for h, s, v in list(zip(p.hypotheses, p.scores, p.verdicts))[:3]:
            out.append(f"  - hypothesis `{h}` ({v}, {s:.3f})")
    return "\n".join(out) + "\n"
