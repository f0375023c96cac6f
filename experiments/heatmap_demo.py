"""Heat-map demo on real generated problems with a *scripted* predictor (not a trained model).

The predictor adds exactly but forgets every carry out of digit positions >= 10, the way a model
that never saw a carry past position 10 might fail. Its answers go through the task's own
verifier and tallies, so the picture exercises the whole path a trained model's predictions take:

    python experiments/heatmap_demo.py experiments/figures/heatmap_demo.png
"""

from __future__ import annotations

import sys

from symlit.core.notation import encode_int
from symlit.tasks import ArithmeticTask
from symlit.tasks.arithmetic_metrics import length_heatmap


def forgetful_sum(a: int, b: int, horizon: int = 10) -> int:
    """``a + b`` computed digit by digit, dropping every carry out of a position >= ``horizon``."""
    total, carry, i = 0, 0, 0
    while a or b or carry:
        column = a % 10 + b % 10 + carry
        total += (column % 10) * 10**i
        carry = column // 10 if i < horizon else 0
        a, b, i = a // 10, b // 10, i + 1
    return total


def main(path: str) -> None:
    task = ArithmeticTask(
        digits=[1, 10],
        reverse_output=True,
        index_hints=True,
        balance=["lengths"],
        n_train=100,
        n_valid=0,
        n_test=0,
        ood={"grid": {"digits": [1, 30], "n": 9000}},
    )
    grid = task.build()["grid"]
    records, rows = [], []
    for source, target in zip(grid["source"], grid["target"]):
        a, b = task.operands(source)
        hypothesis = " ".join(encode_int(forgetful_sum(a, b), task.target_encoding, hints=True))
        correct = task.verify(source, target, hypothesis)
        records.append((*task.operand_lengths(source), correct))
        rows.append((source, target, hypothesis, correct))
    fig = length_heatmap(records, (1, 10), path, title="scripted predictor (forgets carries past digit 10)")
    ratios = task.tally_split("grid", rows).ratios()
    print({k: round(v, 3) for k, v in ratios.items() if k.startswith("acc_by_pos/") and int(k.split("/")[1]) % 5 == 0})
    print(f"{len(records)} problems, exact match {sum(c for *_, c in records) / len(records):.3f}; wrote {path}")
    fig.clf()


if __name__ == "__main__":
    main(sys.argv[1])
