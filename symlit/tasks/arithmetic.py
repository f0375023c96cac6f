"""Integer arithmetic: sums, differences and products of 2 to N operands.

The default reproduces the workshop task (``a + b`` with ``a, b`` in 1..100). Splits are disjoint
by construction: problems are drawn without replacement from the space of distinct problems and
then cut into train/valid/test, so no test problem appears in training (the workshop's random
80/20 split of a sample drawn with replacement leaked). Out-of-distribution test splits (more
digits, more operands) are drawn from a modified task and exclude every in-distribution problem.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from symlit.notation import (
    NotationError,
    check_encoding,
    decode_int,
    digit_vocabulary,
    encode_int,
    integer_vocabulary,
    to_digits,
)
from symlit.tasks.base import Rows, Task

OPERATORS = ("+", "-", "*")
MAX_ENUMERATION = 2_000_000

Problem = tuple[tuple[int, ...], tuple[str, ...]]


def evaluate(operands: tuple[int, ...], operators: tuple[str, ...]) -> int:
    """Value of ``o0 op0 o1 op1 ...`` with the usual precedence (``*`` before ``+``/``-``)."""
    terms, signs = [operands[0]], []
    for op, value in zip(operators, operands[1:]):
        if op == "*":
            terms[-1] *= value
        else:
            terms.append(value)
            signs.append(1 if op == "+" else -1)
    return terms[0] + sum(s * t for s, t in zip(signs, terms[1:]))


def _as_range(value: int | list[int] | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ValueError(f"data.task.{name}={list(value)} must be an integer or a [min, max] pair")
    return int(value[0]), int(value[1])


@dataclass
class ArithmeticTask(Task):
    """Random integer arithmetic problems, verified by integer value.

    Operands are drawn uniformly from ``[min_value, max_value]``, or, when ``digits`` is set, by
    first drawing a digit count uniformly from ``digits`` (an integer or ``[min, max]``) and then a
    number with that many digits. ``n_operands`` is an integer or a ``[min, max]`` range;
    ``operators`` are drawn uniformly per position. ``ood`` maps a split name to field overrides
    (and an optional ``n``), e.g. ``{more_digits: {digits: 3}}``.

    ``zero_pad`` (digit encodings) writes every operand with as many digits as the widest operand
    and every result with as many digits as the widest possible result, using leading zeros, so
    the k-th digit of every number sits at a fixed position (``7 + 45 -> INT+ 0 7 + INT+ 4 5``,
    target ``INT+ 0 5 2``): the format with which Lee et al. (2023, "Teaching arithmetic to small
    transformers") made small models learn addition from few examples, with ``reversed`` output.
    """

    operators: list[str] = field(default_factory=lambda: ["+"])
    n_operands: Any = 2
    min_value: int = 1
    max_value: int = 100
    digits: Any = None
    negative_operands: bool = False
    encoding: str = "digits"
    zero_pad: bool = False
    base: int = 10
    n_train: int = 8000
    n_valid: int = 1000
    n_test: int = 1000
    ood: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    bpe_vocab_size: int = 64

    def __post_init__(self) -> None:
        self.operators = list(self.operators)
        self.ood = {str(k): dict(v) for k, v in dict(self.ood).items()}
        if isinstance(self.n_operands, (list, tuple)) or hasattr(self.n_operands, "__len__"):
            self.n_operands = list(self.n_operands)
        if self.digits is not None and not isinstance(self.digits, int):
            self.digits = list(self.digits)
        bad_ops = [op for op in self.operators if op not in OPERATORS]
        if not self.operators or bad_ops:
            raise ValueError(f"data.task.operators={self.operators} must be a non-empty subset of {list(OPERATORS)}")
        lo, hi = _as_range(self.n_operands, "n_operands")
        if lo < 2 or hi < lo:
            raise ValueError(f"data.task.n_operands={self.n_operands} needs 2 <= min <= max")
        if self.digits is not None:
            dlo, dhi = _as_range(self.digits, "digits")
            if dlo < 1 or dhi < dlo:
                raise ValueError(f"data.task.digits={self.digits} needs 1 <= min <= max (zero digits is not a number)")
        elif self.min_value > self.max_value:
            raise ValueError(
                f"data.task.min_value={self.min_value} is greater than data.task.max_value={self.max_value}"
            )
        elif self.negative_operands:
            raise ValueError(
                "data.task.negative_operands=true applies to operands drawn by digits; "
                "with a value range, set data.task.min_value below 0 instead"
            )
        check_encoding(self.encoding, self.base)
        if self.zero_pad and self.encoding not in ("digits", "reversed"):
            raise ValueError(
                f"data.task.zero_pad=true needs a digit encoding (digits or reversed), not "
                f"data.task.encoding={self.encoding!r}"
            )
        for name, size in (("n_train", self.n_train), ("n_valid", self.n_valid), ("n_test", self.n_test)):
            if size < 0 or (name == "n_train" and size == 0):
                raise ValueError(f"data.task.{name}={size} must be {'positive' if name == 'n_train' else '>= 0'}")
        for split, overrides in self.ood.items():
            if split in ("train", "valid", "test"):
                raise ValueError(f"data.task.ood.{split}: an out-of-distribution split cannot be named {split!r}")
            unknown = set(overrides) - {f.name for f in dataclasses.fields(self)} - {"n"}
            if unknown:
                raise ValueError(f"data.task.ood.{split} has unknown fields {sorted(unknown)}")

    # ------------------------------------------------------------------ vocabulary / tokenization
    @property
    def tokenizer_kind(self) -> str:  # type: ignore[override]
        return "bpe" if self.encoding == "text" else "word"

    def base_vocabulary(self) -> list[str]:
        return [*OPERATORS, *integer_vocabulary(self.encoding, self.base)]

    def digit_tokens(self) -> list[str]:
        return digit_vocabulary(self.encoding, self.base)

    @functools.cached_property
    def padded_widths(self) -> tuple[int, int]:
        """Digit counts operands and results are padded to (``(0, 0)`` without ``zero_pad``).

        The result width bounds ``|result|`` by ``n * max|operand|`` for sums and differences and
        by ``max|operand| ** n`` when ``*`` is among the operators.
        """
        if not self.zero_pad:
            return 0, 0
        largest = max(max(abs(lo), abs(hi)) for lo, hi in self._operand_values())
        n_max = _as_range(self.n_operands, "n_operands")[1]
        bound = largest**n_max if "*" in self.operators else n_max * largest
        return len(to_digits(largest, self.base)), len(to_digits(bound, self.base))

    def format_problem(self, problem: Problem) -> tuple[str, str]:
        """Source and target text of one problem."""
        operands, operators = problem
        operand_width, result_width = self.padded_widths
        parts = encode_int(operands[0], self.encoding, self.base, operand_width)
        for op, value in zip(operators, operands[1:]):
            parts += [op, *encode_int(value, self.encoding, self.base, operand_width)]
        target = encode_int(evaluate(operands, operators), self.encoding, self.base, result_width)
        return " ".join(parts), " ".join(target)

    def verify(self, source: str, target: str, hypothesis: str) -> bool:
        """Correct when the hypothesis spells the same integer as the target."""
        try:
            return decode_int(hypothesis.split(), self.encoding, self.base) == decode_int(
                target.split(), self.encoding, self.base
            )
        except NotationError:
            return False

    def bucket(self, source: str, target: str) -> str:
        """``digits=D`` (the longest operand), plus ``operands=N`` when the operand count varies."""
        groups: list[list[str]] = [[]]
        for token in source.split():
            if token in OPERATORS:
                groups.append([])
            else:
                groups[-1].append(token)
        try:
            values = [decode_int(g, self.encoding, self.base) for g in groups]
        except NotationError:
            return "unparsed"
        label = f"digits={max(len(to_digits(v, self.base)) for v in values)}"
        lo, hi = _as_range(self.n_operands, "n_operands")
        return label if lo == hi else f"{label} operands={len(values)}"

    # ------------------------------------------------------------------ sampling
    def _operand_values(self) -> list[tuple[int, int]]:
        """Disjoint value ranges operands are drawn from, one per digit count (or one range)."""
        if self.digits is None:
            return [(self.min_value, self.max_value)]
        lo, hi = _as_range(self.digits, "digits")
        return [(0 if d == 1 else self.base ** (d - 1), self.base**d - 1) for d in range(lo, hi + 1)]

    def _draw_operand(self, rng: random.Random) -> int:
        ranges = self._operand_values()
        lo, hi = ranges[rng.randrange(len(ranges))]
        value = rng.randint(lo, hi)
        if self.negative_operands and self.digits is not None and rng.random() < 0.5:
            value = -value
        return value

    def _draw(self, rng: random.Random) -> Problem:
        lo, hi = _as_range(self.n_operands, "n_operands")
        k = rng.randint(lo, hi)
        operands = tuple(self._draw_operand(rng) for _ in range(k))
        operators = tuple(rng.choice(self.operators) for _ in range(k - 1))
        return operands, operators

    def space_size(self) -> int:
        """Number of distinct problems the configuration can produce."""
        n_values = sum(hi - lo + 1 for lo, hi in self._operand_values())
        if self.negative_operands and self.digits is not None:
            n_values = 2 * n_values - (1 if any(lo == 0 for lo, _ in self._operand_values()) else 0)
        lo, hi = _as_range(self.n_operands, "n_operands")
        return sum(n_values**k * len(set(self.operators)) ** (k - 1) for k in range(lo, hi + 1))

    def sample(self, n: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[tuple[str, str, Problem]]:
        """``n`` distinct problems (by source text) whose sources are not in ``exclude``.

        Problems follow the distribution of :meth:`_draw` (digit count, then value). When that
        distribution is uniform over problems (a value range, a fixed operand count) and ``n`` is a
        large part of the space, the space is enumerated and shuffled instead of rejection-sampled.
        """
        space = self.space_size()
        too_many = ValueError(
            f"asked for {n} distinct problems but this configuration has only {space} "
            f"({len(exclude)} already used by other splits); lower data.task.n_train/n_valid/n_test "
            "(or the ood split's n) or widen the operand range"
        )
        if n > space:
            raise too_many
        lo, hi = _as_range(self.n_operands, "n_operands")
        uniform = self.digits is None and lo == hi
        out: dict[str, tuple[str, Problem]] = {}
        if uniform and space <= MAX_ENUMERATION and 2 * (n + len(exclude)) >= space:
            values, ops = list(range(self.min_value, self.max_value + 1)), sorted(set(self.operators))
            every = [
                (operands, operators)
                for k in range(lo, hi + 1)
                for operands in itertools.product(values, repeat=k)
                for operators in itertools.product(ops, repeat=k - 1)
            ]
            rng.shuffle(every)
            candidates = iter(every)
        else:
            attempts = 20 * n + 100_000  # a dense request in a small space gives up instead of spinning
            candidates = (self._draw(rng) for _ in range(attempts))
        for problem in candidates:
            source, target = self.format_problem(problem)
            if source not in exclude and source not in out:
                out[source] = (target, problem)
                if len(out) == n:
                    break
        if len(out) < n:
            raise too_many
        return [(s, t, p) for s, (t, p) in out.items()]

    def _rows(self, samples: list[tuple[str, str, Problem]]) -> Rows:
        return {
            "source": [s for s, _, _ in samples],
            "target": [t for _, t, _ in samples],
            "n_operands": [len(p[0]) for _, _, p in samples],
            "max_digits": [max(len(to_digits(v, self.base)) for v in p[0]) for _, _, p in samples],
        }

    def build(self) -> dict[str, Rows]:
        rng = random.Random(self.seed)
        samples = self.sample(self.n_test + self.n_valid + self.n_train, rng)
        test, valid, train = (
            samples[: self.n_test],
            samples[self.n_test : self.n_test + self.n_valid],
            samples[self.n_test + self.n_valid :],
        )
        splits = {"train": self._rows(train), "valid": self._rows(valid), "test": self._rows(test)}
        used = {s for s, _, _ in samples}
        for name, overrides in sorted(self.ood.items()):
            overrides = dict(overrides)
            n = int(overrides.pop("n", self.n_test))
            shifted = dataclasses.replace(self, ood={}, **overrides)
            splits[name] = self._rows(shifted.sample(n, random.Random(f"{self.seed}/{name}"), exclude=used))
        return splits
