"""What a length-generalisation study of arithmetic reads: pure functions, no Lightning, no task.

* :func:`count_carries`: how many columns of a sum send a carry to the next column;
* :func:`position_hits`: which digits of a result a hypothesis got right, aligned by significance
  (digit ``i`` is worth ``base ** i``), so position 0 is the units digit whether the output is
  written plain or reversed;
* :class:`Tally`: hit and count sums under a fixed, declared set of keys. Sums (not ratios) add
  up across batches and DDP ranks, and a fixed key set means every rank logs the same keys;
* :func:`length_heatmap`: exact-match accuracy by (length of operand 1, length of operand 2) with
  the training region outlined (McLeish et al. 2024, "Transformers can do arithmetic with the
  right embeddings", Fig. 1), saved as a PNG.

:class:`~symlit.tasks.ArithmeticTask` turns a (source, target, hypothesis) triple into tallies
with these functions (:meth:`~symlit.tasks.ArithmeticTask.tally`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def count_carries(operands: Sequence[int], base: int = 10) -> int:
    """Number of columns whose digit sum (with the incoming carry) reaches ``base``.

    Operands must be non-negative; with more than two operands a carry can exceed 1 and still
    counts once per column (``count_carries([99, 99, 99, 99]) == 2``).
    """
    if any(v < 0 for v in operands):
        raise ValueError(f"carries are defined for non-negative operands, got {list(operands)}")
    values, carry, count = list(operands), 0, 0
    while carry or any(values):
        column = sum(v % base for v in values) + carry
        carry = column // base
        count += carry > 0
        values = [v // base for v in values]
    return count


def position_hits(target: Sequence[int], hypothesis: Sequence[int] | None) -> list[bool]:
    """One verdict per target digit: does the hypothesis have the same digit at that significance?

    Both digit lists are least significant first (as :func:`symlit.core.notation.significant_digits`
    returns them). ``None`` (no hypothesis, or one that does not parse) misses every position; a
    hypothesis shorter than the target misses the positions it lacks, and digits beyond the
    target's length are not scored here (exact match scores them).
    """
    if hypothesis is None:
        return [False] * len(target)
    return [i < len(hypothesis) and hypothesis[i] == digit for i, digit in enumerate(target)]


class Tally:
    """Hits and counts under a fixed, ordered set of keys (``ratios`` skips keys never counted).

    >>> t = Tally(["a", "b"]); t.add("a", 1); t.add("a", 0); t.ratios()
    {'a': 0.5}
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(keys)
        self.hits = dict.fromkeys(self.keys, 0)
        self.counts = dict.fromkeys(self.keys, 0)

    def add(self, key: str, hits: int, count: int = 1) -> None:
        """Add ``hits`` out of ``count`` scored items under ``key`` (an undeclared key is an error)."""
        if key not in self.counts:
            raise KeyError(f"{key!r} is not one of the declared tally keys {self.keys}")
        self.hits[key] += int(hits)
        self.counts[key] += count

    def ratios(self) -> dict[str, float]:
        """``hits / count`` for every key counted at least once, in declared order."""
        return {k: self.hits[k] / self.counts[k] for k in self.keys if self.counts[k]}


def length_heatmap(
    records: Iterable[tuple[int, int, bool]],
    train_lengths: tuple[int, int],
    path: str | Path | None = None,
    title: str = "exact-match accuracy",
) -> Figure:
    """Heat map of accuracy by operand lengths, training region outlined; saved to ``path`` as PNG.

    ``records`` are ``(length of operand 1, length of operand 2, correct)``; ``train_lengths`` is
    the inclusive ``(min, max)`` digit count of training operands. Cells without records are grey;
    on grids up to 20 x 20 each cell shows its accuracy in percent. Returns the figure (for a W&B
    image); the caller closes it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    hits: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for a, b, correct in records:
        hits[a, b][0] += bool(correct)
        hits[a, b][1] += 1
    if not hits:
        raise ValueError("length_heatmap needs at least one (length 1, length 2, correct) record")
    lo = min(min(a, b) for a, b in hits)
    hi = max(max(a, b) for a, b in hits)
    n = hi - lo + 1
    grid = np.full((n, n), np.nan)  # grid[row = operand 2 length - lo, column = operand 1 length - lo]
    for (a, b), (h, c) in hits.items():
        grid[b - lo, a - lo] = 100.0 * h / c

    size = min(4 + 0.35 * n, 14)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=110)
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    extent = (lo - 0.5, hi + 0.5, lo - 0.5, hi + 0.5)
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap=cmap, vmin=0, vmax=100, extent=extent)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="exact match (%)")
    t_lo, t_hi = train_lengths
    ax.add_patch(
        Rectangle(
            (t_lo - 0.5, t_lo - 0.5),
            t_hi - t_lo + 1,
            t_hi - t_lo + 1,
            fill=False,
            edgecolor="red",
            linewidth=2.5,
            label=f"training lengths {t_lo}..{t_hi}",
        )
    )
    if n <= 20:
        for (a, b), (h, c) in hits.items():
            value = 100.0 * h / c
            ax.text(
                a, b, f"{value:.0f}", ha="center", va="center", fontsize=8, color="black" if value > 60 else "white"
            )
    ticks = list(range(lo, hi + 1, max(1, n // 15)))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("length of operand 1 (digits)")
    ax.set_ylabel("length of operand 2 (digits)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.09), frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
