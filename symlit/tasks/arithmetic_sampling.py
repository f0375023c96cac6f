"""Sampling arithmetic problems balanced by operand lengths and/or carries (``data.task.balance``).

The problems are spread equally over strata (:func:`strata`): combinations of operand digit
counts and/or carry counts. A carry count is drawn exactly, not by rejection: :func:`carry_table`
counts the digit assignments column by column and :func:`operands_with_carries` draws uniformly
among the problems with the wanted carries.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import TYPE_CHECKING

from symlit.tasks.arithmetic_metrics import count_carries

if TYPE_CHECKING:
    from symlit.tasks.arithmetic import ArithmeticTask

Problem = tuple[tuple[int, ...], tuple[str, ...]]


def as_range(value: int | list[int] | tuple[int, int], name: str) -> tuple[int, int]:
    """``value`` (an integer or a ``[min, max]`` pair) as a ``(min, max)`` pair."""
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ValueError(f"data.task.{name}={list(value)} must be an integer or a [min, max] pair")
    return int(value[0]), int(value[1])


def problem_key(problem: Problem) -> str:
    """A problem up to commutativity: the signed terms of its sum, each the sorted operands of its
    product, in sorted order (``7 + 45`` and ``45 + 7``, ``3 * 4`` and ``4 * 3`` share it)."""
    operands, operators = problem
    terms, factors, sign = [], [operands[0]], 1
    for op, value in zip(operators, operands[1:]):
        if op == "*":
            factors.append(value)
        else:
            terms.append((sign, tuple(sorted(factors))))
            factors, sign = [value], 1 if op == "+" else -1
    terms.append((sign, tuple(sorted(factors))))
    return repr(sorted(terms))


@functools.lru_cache(maxsize=64)
def tuples_by_sum(lows: tuple[int, ...], base: int) -> dict[int, list[tuple[int, ...]]]:
    """Digit tuples (digit ``i`` in ``lows[i]..base-1``) grouped by their sum."""
    groups: dict[int, list[tuple[int, ...]]] = {}
    for digits in itertools.product(*(range(low, base) for low in lows)):
        groups.setdefault(sum(digits), []).append(digits)
    return groups


def strata(task: ArithmeticTask) -> list[tuple[tuple[int, ...] | None, int | None]]:
    """``(operand digit counts or None, carry count or None)`` for every stratum to balance."""
    lengths: list[tuple[int, ...] | None] = [None]
    if "lengths" in task.balance:
        dlo, dhi = as_range(task.digits, "digits")
        klo, khi = as_range(task.n_operands, "n_operands")
        lengths = [c for k in range(klo, khi + 1) for c in itertools.product(range(dlo, dhi + 1), repeat=k)]
    carries: list[int | None] = [None]
    if "carries" in task.balance:
        carries = list(range(task.widest_digits[1]))  # a carry needs a column above it
    # no more carries than columns
    return [(ls, c) for ls, c in itertools.product(lengths, carries) if ls is None or c is None or c <= max(ls)]


def draw_stratum(
    task: ArithmeticTask, stratum: tuple[tuple[int, ...] | None, int | None], rng: random.Random
) -> Problem | None:
    """One problem of the stratum, or ``None`` when this attempt missed it."""
    lengths, carries = stratum
    if lengths is None and task.digits is not None:
        klo, khi = as_range(task.n_operands, "n_operands")
        dlo, dhi = as_range(task.digits, "digits")
        lengths = tuple(rng.randint(dlo, dhi) for _ in range(rng.randint(klo, khi)))
    if lengths is None:  # a value range: draw, then keep only the wanted carry count
        problem = task._draw(rng)
        return problem if count_carries(problem[0], task.base) == carries else None
    if carries is not None:
        operands = operands_with_carries(lengths, carries, task.base, rng)
        return None if operands is None else (operands, ("+",) * (len(operands) - 1))
    values = []
    for d in lengths:
        value = rng.randint(0 if d == 1 else task.base ** (d - 1), task.base**d - 1)
        values.append(-value if task.negative_operands and rng.random() < 0.5 else value)
    return tuple(values), tuple(rng.choice(task.operators) for _ in range(len(lengths) - 1))


@functools.lru_cache(maxsize=1024)
def carry_table(lengths: tuple[int, ...], base: int) -> tuple[list[dict[int, int]], list[list[dict[int, int]]]]:
    """Counting tables for operands of the given digit counts (a leading digit is never 0).

    ``sums[col][s]``: digit tuples of column ``col`` that add up to ``s``;
    ``rest[col][carry_in][c]``: digit assignments of columns ``col..`` with ``c`` carries.
    """
    width = max(lengths)
    sums = []
    for col in range(width):
        dist = {0: 1}
        for d in lengths:
            if col < d:
                low = 1 if col == d - 1 and d > 1 else 0
                new: dict[int, int] = {}
                for total, ways in dist.items():
                    for digit in range(low, base):
                        new[total + digit] = new.get(total + digit, 0) + ways
                dist = new
        sums.append(dist)
    n_states = len(lengths) + 1  # a column carries at most len(lengths) - 1 (< base) onward
    rest = [[{} for _ in range(n_states)] for _ in range(width)] + [[{0: 1} for _ in range(n_states)]]
    for col in range(width - 1, -1, -1):
        for carry_in in range(n_states):
            table = rest[col][carry_in]
            for total, ways in sums[col].items():
                carry_out = (total + carry_in) // base
                for c, n in rest[col + 1][min(carry_out, n_states - 1)].items():
                    key = c + (carry_out > 0)
                    table[key] = table.get(key, 0) + ways * n
    return sums, rest


def operands_with_carries(
    lengths: tuple[int, ...], carries: int, base: int, rng: random.Random
) -> tuple[int, ...] | None:
    """Operands of the given digit counts whose sum has exactly ``carries`` carries, drawn
    uniformly among all such problems (by counting, column by column), or ``None`` if none exist."""
    sums, rest = carry_table(lengths, base)
    if not rest[0][0].get(carries):
        return None
    digits: list[list[int]] = [[] for _ in lengths]
    carry, left = 0, carries
    for col, dist in enumerate(sums):
        # the column's digit sum, weighted by the completions that keep `left` carries reachable
        options = []
        for total, ways in dist.items():
            carry_out = (total + carry) // base
            options.append((total, carry_out, ways * rest[col + 1][carry_out].get(left - (carry_out > 0), 0)))
        pick = rng.randrange(sum(w for _, _, w in options))
        for total, carry_out, weight in options:  # noqa: B007 - the picked values are read after the break
            if pick < weight:
                break
            pick -= weight
        # the column's digits: uniform among the tuples with that sum
        active = [j for j, d in enumerate(lengths) if col < d]
        lows = tuple(1 if col == lengths[j] - 1 and lengths[j] > 1 else 0 for j in active)
        for j, x in zip(active, rng.choice(tuples_by_sum(lows, base)[total])):
            digits[j].append(x)
        left -= carry_out > 0
        carry = carry_out
    return tuple(sum(d * base**i for i, d in enumerate(ds)) for ds in digits)


def sample_balanced(
    task: ArithmeticTask, n: int, rng: random.Random, exclude: set[str], exclude_keys: set[str], too_many: ValueError
) -> list[tuple[str, str, Problem]]:
    """``n`` distinct problems spread equally over :func:`strata`.

    A stratum that cannot give its share (too few distinct problems left, or none at all) is
    closed once it misses, and the shortfall is shared among the open strata in the next round.
    """
    out: dict[str, tuple[str, Problem]] = {}
    open_strata = strata(task)
    while len(out) < n and open_strata:
        need = n - len(out)
        rng.shuffle(open_strata)  # which strata take the remainder
        still_open = []
        for i, stratum in enumerate(open_strata):
            quota = need // len(open_strata) + (i < need % len(open_strata))
            got = 0
            for _ in range(20 * quota + 200 if quota else 0):
                problem = draw_stratum(task, stratum, rng)
                if problem is None or (exclude_keys and problem_key(problem) in exclude_keys):
                    continue
                source, target = task.format_problem(problem)
                if source not in exclude and source not in out:
                    out[source] = (target, problem)
                    got += 1
                    if got == quota:
                        break
            if got == quota:
                still_open.append(stratum)
        open_strata = still_open
    if len(out) < n:
        raise too_many
    samples = [(s, t, p) for s, (t, p) in out.items()]
    rng.shuffle(samples)
    return samples
