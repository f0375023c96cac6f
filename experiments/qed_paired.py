"""Accuracy of several QED runs on the same test rows, with uncertainty from the few diagram
families a leak-free test holds: 95 % intervals from a bootstrap over diagram families (rows of
one family are not independent), and paired differences against the first run.

    python experiments/qed_paired.py NAME=EVAL_DIR [NAME=EVAL_DIR ...]

Each EVAL_DIR is the output of ``symlit-eval`` (its ``predictions.jsonl``). The runs may use
different notations: rows are paired by position, after checking that every run's row holds the
same labelled diagram (its canonical key, read from the source tokens).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from symlit.tasks import QEDSymbaTask

SAMPLES = 10_000


def predictions(eval_dir: str) -> list[dict]:
    return [json.loads(line) for line in (Path(eval_dir) / "predictions.jsonl").open()]


def interval(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def main(args: list[str]) -> None:
    task = QEDSymbaTask()
    runs: dict[str, list[bool]] = {}
    keys: list[dict[str, str]] | None = None
    for name, path in (a.split("=", 1) for a in args):
        rows = predictions(path)
        row_keys = [task.canonical_key(r["source"], r["target"]) for r in rows]
        if keys is not None and [k["diagram"] for k in row_keys] != [k["diagram"] for k in keys]:
            raise SystemExit(f"{name}: not the same test rows, in the same order, as the first run")
        keys = keys or row_keys
        runs[name] = [r["greedy_verdict"] == "correct" for r in rows]
    family: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        family.setdefault(k["diagram_family"], []).append(i)
    groups = list(family.values())
    rng = random.Random(0)
    draws = [[rng.choice(groups) for _ in groups] for _ in range(SAMPLES)]
    print(f"{len(keys)} test rows in {len(groups)} diagram families; bootstrap over families, {SAMPLES} draws\n")
    print(f"| run | seq_acc | 95 % interval | difference to {next(iter(runs))} | 95 % interval |")
    print("|---|---|---|---|---|")
    base = next(iter(runs.values()))
    for name, run in runs.items():
        acc = sum(run) / len(run)
        accs, diffs = [], []
        for draw in draws:
            rows = [i for g in draw for i in g]
            accs.append(sum(run[i] for i in rows) / len(rows))
            diffs.append(sum(run[i] - base[i] for i in rows) / len(rows))
        lo, hi = interval(accs)
        dlo, dhi = interval(diffs)
        diff = (sum(run) - sum(base)) / len(run)
        print(f"| {name} | {acc:.1%} | [{lo:.1%}, {hi:.1%}] | {diff:+.1%} | [{dlo:+.1%}, {dhi:+.1%}] |")


if __name__ == "__main__":
    main(sys.argv[1:])
