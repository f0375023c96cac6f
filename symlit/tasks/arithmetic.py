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
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from symlit.core.notation import (
    DIGIT_SYMBOLS,
    NotationError,
    check_encoding,
    decode_int,
    digit_vocabulary,
    encode_int,
    hint_token,
    integer_vocabulary,
    significant_digits,
    to_digits,
)
from symlit.tasks.arithmetic_metrics import Tally, count_carries, length_heatmap, position_hits
from symlit.tasks.arithmetic_sampling import Problem, as_range, problem_key, sample_balanced
from symlit.tasks.base import Rows, Task, Verdict
from symlit.tasks.scratchpads import ANSWER_SEPARATORS, REQUIREMENTS, SCRATCHPAD_TOKENS, SCRATCHPADS, write_scratchpad

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OPERATORS = ("+", "-", "*")
MAX_ENUMERATION = 2_000_000
BALANCE_KINDS = ("lengths", "carries")
#: the data-format options and their "off" values: left out of the fingerprint when off, so caches
#: built before these options existed stay valid
FORMAT_DEFAULTS: dict[str, Any] = {
    "reverse_output": False,
    "index_hints": False,
    "balance": [],
    "scratchpad": None,
    "held_out_by": "source",
}
#: what a held-out problem (valid, test, ood) may not share with a training problem (``data.task.held_out_by``)
HELD_OUT_BY = ("source", "operands")


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


@dataclass
class ArithmeticTask(Task):
    """Random integer arithmetic problems, verified by integer value.

    Operands are drawn uniformly from ``[min_value, max_value]``, or, when ``digits`` is set, by
    first drawing a digit count uniformly from ``digits`` (an integer or ``[min, max]``) and then a
    number with that many digits. ``n_operands`` is an integer or a ``[min, max]`` range;
    ``operators`` are drawn uniformly per position. ``ood`` maps a split name to field overrides
    (and an optional ``n``), e.g. ``{more_digits: {digits: 3}}``. A split named ``valid_<name>`` is
    validated during training (whole) and never tested, e.g. long problems to select a checkpoint
    on (:meth:`~symlit.tasks.base.Task.validation_splits`). Held-out splits share no problem.

    ``zero_pad`` (digit encodings) writes every operand with as many digits as the widest operand
    and every result with as many digits as the widest possible result, using leading zeros, so
    the k-th digit of every number sits at a fixed position (``7 + 45 -> INT+ 0 7 + INT+ 4 5``,
    target ``INT+ 0 5 2``): the format with which Lee et al. (2023, "Teaching arithmetic to small
    transformers") made small models learn addition from few examples, with ``reversed`` output.

    Formats and sampling for length-generalisation studies (all off by default):

    * ``reverse_output``: the result least significant digit first, the operands as written by
      ``encoding=digits`` (Lee et al.'s "reversed" format); ``encoding=reversed`` reverses both.
    * ``index_hints``: a hint token before every digit names its significance
      (:func:`~symlit.core.notation.hint_token`; Zhou et al. 2024), the same in operands and result.
    * ``held_out_by``: ``source`` (default) keeps every held-out source out of train;
      ``operands`` keeps every held-out *problem up to commutativity* out (:meth:`canonical_key`):
      no training problem is a test problem with its operands swapped, so a test split measures
      more than commutativity.
    * ``balance``: a list of ``lengths`` (every combination of operand digit counts equally often)
      and/or ``carries`` (every number of carries equally often; ``+`` only). Each split is
      balanced on its own, as far as the distinct problems of a combination allow: a combination
      with too few problems gives all it has and the others share the rest.

    Scratchpad target formats (``scratchpad``, off by default): the target writes intermediate
    steps, then an answer separator (:attr:`answer_separator`), then the result as without a
    scratchpad. Only the answer after the last separator is scored; a hypothesis without one is
    malformed. ``lee_simplified`` and ``lee_detailed`` (Lee et al. 2024; two operands, ``+`` or
    ``*``), ``column_sums`` (running column sums; ``+``, any number of operands) and
    ``partial_products`` (partial products with running sums, Bai et al. 2025; two operands, ``*``):
    see :mod:`symlit.tasks.scratchpads`.
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
    reverse_output: bool = False
    index_hints: bool = False
    balance: Any = field(default_factory=list)
    scratchpad: str | None = None
    held_out_by: str = "source"

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
        lo, hi = as_range(self.n_operands, "n_operands")
        if lo < 2 or hi < lo:
            raise ValueError(f"data.task.n_operands={self.n_operands} needs 2 <= min <= max")
        if self.digits is not None:
            dlo, dhi = as_range(self.digits, "digits")
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
        if self.held_out_by not in HELD_OUT_BY:
            raise ValueError(f"data.task.held_out_by={self.held_out_by!r} must be one of {list(HELD_OUT_BY)}")
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
        self._check_formats()

    # ------------------------------------------------------------------ vocabulary / tokenization
    @property
    def tokenizer_kind(self) -> str:  # type: ignore[override]
        return "bpe" if self.encoding == "text" else "word"

    def base_vocabulary(self) -> list[str]:
        vocabulary = [*OPERATORS, *integer_vocabulary(self.encoding, self.base)]
        if self.index_hints:  # every significance any split can write, out-of-distribution ones too
            widest = max(max(self.split_task(s).widest_digits) for s in ("test", *sorted(self.ood)))
            vocabulary += [hint_token(i) for i in range(widest)]
        if self.scratchpad:
            vocabulary += [t for t in SCRATCHPAD_TOKENS if t not in vocabulary]
        if self.scratchpad == "column_sums":  # running column sums and carries, every split's widest
            most = max(as_range(self.split_task(s).n_operands, "n_operands")[1] for s in ("test", *sorted(self.ood)))
            vocabulary += [str(n) for n in range(most * self.base) if str(n) not in vocabulary]
        return vocabulary

    def digit_tokens(self) -> list[str]:
        return digit_vocabulary(self.encoding, self.base)

    def digits_lsb_first(self) -> tuple[bool, bool]:
        return self.encoding == "reversed", self.target_encoding == "reversed"

    @functools.cached_property
    def padded_widths(self) -> tuple[int, int]:
        """Digit counts operands and results are padded to (``(0, 0)`` without ``zero_pad``).

        The result width bounds ``|result|`` by ``n * max|operand|`` for sums and differences and
        by ``max|operand| ** n`` when ``*`` is among the operators.
        """
        return self.widest_digits if self.zero_pad else (0, 0)

    @functools.cached_property
    def widest_digits(self) -> tuple[int, int]:
        """Most digits an operand and a result of this configuration can have."""
        largest = max(max(abs(lo), abs(hi)) for lo, hi in self._operand_values())
        n_max = as_range(self.n_operands, "n_operands")[1]
        bound = largest**n_max if "*" in self.operators else n_max * largest
        return len(to_digits(largest, self.base)), len(to_digits(bound, self.base))

    def format_problem(self, problem: Problem) -> tuple[str, str]:
        """Source and target text of one problem."""
        operands, operators = problem
        operand_width, result_width = self.padded_widths
        hints = self.index_hints
        parts = encode_int(operands[0], self.encoding, self.base, operand_width, hints)
        for op, value in zip(operators, operands[1:]):
            parts += [op, *encode_int(value, self.encoding, self.base, operand_width, hints)]
        target = encode_int(evaluate(operands, operators), self.target_encoding, self.base, result_width, hints)
        return " ".join(parts), " ".join([*self._scratchpad(operands, operators), *target])

    def _scratchpad(self, operands: tuple[int, ...], operators: tuple[str, ...]) -> list[str]:
        """The scratchpad tokens of a problem, up to and including the answer separator ([] when off)."""
        operand_width, result_width = self.padded_widths
        reverse = self.target_encoding == "reversed"
        return write_scratchpad(self.scratchpad, operands, operators, self.base, operand_width, result_width, reverse)

    @property
    def answer_separator(self) -> str | None:
        """The token after which a scratchpad target writes the answer (``None`` without a scratchpad)."""
        return ANSWER_SEPARATORS.get(self.scratchpad) if self.scratchpad else None

    def answer_tokens(self, text: str) -> list[str]:
        """The answer of a target or hypothesis: its tokens after the last :attr:`answer_separator`
        (all of them without a scratchpad); :class:`NotationError` when the separator is missing."""
        tokens = text.split()
        separator = self.answer_separator
        if separator is None:
            return tokens
        if separator not in tokens:
            raise NotationError(f"no answer separator {separator!r} in {text!r}")
        return tokens[len(tokens) - tokens[::-1].index(separator) :]

    def verify(self, source: str, target: str, hypothesis: str) -> Verdict:
        """Correct when the hypothesis spells the same integer as the target; malformed when it
        spells no integer."""
        encoding, hints = self.target_encoding, self.index_hints
        try:
            value = decode_int(self.answer_tokens(hypothesis), encoding, self.base, hints)
        except NotationError as err:
            return Verdict("malformed", "parse", str(err))
        return Verdict.of(value == decode_int(self.answer_tokens(target), encoding, self.base, hints), "value")

    def bucket(self, source: str, target: str) -> str:
        """``digits=D`` (the longest operand), plus ``operands=N`` when the operand count varies."""
        try:
            values = self.operands(source)
        except NotationError:
            return "unparsed"
        label = f"digits={max(len(to_digits(v, self.base)) for v in values)}"
        lo, hi = as_range(self.n_operands, "n_operands")
        return label if lo == hi else f"{label} operands={len(values)}"

    # ------------------------------------------------------------------ leakage
    key_levels = ("operands",)

    def canonical_key(self, source: str, target: str) -> dict[str, str]:
        """``operands``: the problem up to commutativity: the signed terms of the sum, each the
        sorted operands of its product, in sorted order (``7 + 45`` and ``45 + 7`` share it)."""
        try:
            values = self.operands(source)
        except NotationError:
            return {}
        ops = [token for token in source.split() if token in OPERATORS]
        return {"operands": problem_key((tuple(values), tuple(ops)))}

    # ------------------------------------------------------------------ sampling
    def _operand_values(self) -> list[tuple[int, int]]:
        """Disjoint value ranges operands are drawn from, one per digit count (or one range)."""
        if self.digits is None:
            return [(self.min_value, self.max_value)]
        lo, hi = as_range(self.digits, "digits")
        return [(0 if d == 1 else self.base ** (d - 1), self.base**d - 1) for d in range(lo, hi + 1)]

    def _draw_operand(self, rng: random.Random) -> int:
        ranges = self._operand_values()
        lo, hi = ranges[rng.randrange(len(ranges))]
        value = rng.randint(lo, hi)
        if self.negative_operands and self.digits is not None and rng.random() < 0.5:
            value = -value
        return value

    def _draw(self, rng: random.Random) -> Problem:
        lo, hi = as_range(self.n_operands, "n_operands")
        k = rng.randint(lo, hi)
        operands = tuple(self._draw_operand(rng) for _ in range(k))
        operators = tuple(rng.choice(self.operators) for _ in range(k - 1))
        return operands, operators

    def space_size(self) -> int:
        """Number of distinct problems the configuration can produce."""
        n_values = sum(hi - lo + 1 for lo, hi in self._operand_values())
        if self.negative_operands and self.digits is not None:
            n_values = 2 * n_values - (1 if any(lo == 0 for lo, _ in self._operand_values()) else 0)
        lo, hi = as_range(self.n_operands, "n_operands")
        return sum(n_values**k * len(set(self.operators)) ** (k - 1) for k in range(lo, hi + 1))

    def sample(
        self, n: int, rng: random.Random, exclude: set[str] = frozenset(), exclude_keys: set[str] = frozenset()
    ) -> list[tuple[str, str, Problem]]:
        """``n`` distinct problems (by source text) whose sources are not in ``exclude`` and whose
        :func:`problem_key` is not in ``exclude_keys``.

        Problems follow the distribution of :meth:`_draw` (digit count, then value). When that
        distribution is uniform over problems (a value range, a fixed operand count) and ``n`` is a
        large part of the space, the space is enumerated and shuffled instead of rejection-sampled.
        """
        space = self.space_size()
        too_many = ValueError(
            f"asked for {n} distinct problems but this configuration has only {space} "
            f"({len(exclude)} already used by other splits"
            f"{', and training skips their reorderings (held_out_by=operands)' if exclude_keys else ''}); lower data.task.n_train/n_valid/n_test "
            "(or the ood split's n) or widen the operand range"
        )
        if n > space:
            raise too_many
        if self.balance:
            return sample_balanced(self, n, rng, exclude, exclude_keys, too_many)
        lo, hi = as_range(self.n_operands, "n_operands")
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
            if exclude_keys and problem_key(problem) in exclude_keys:
                continue
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
        by_operands = self.held_out_by == "operands"
        if self.balance or by_operands:  # split by split: each balanced on its own
            samples: list[tuple[str, str, Problem]] = []
            for n in (self.n_test, self.n_valid, self.n_train):
                # held-out problems come first; with held_out_by=operands train skips their reorderings
                keys = {problem_key(p) for _, _, p in samples} if by_operands else set()
                samples += self.sample(n, rng, exclude={s for s, _, _ in samples}, exclude_keys=keys)
        else:
            samples = self.sample(self.n_test + self.n_valid + self.n_train, rng)
        test, valid, train = (
            samples[: self.n_test],
            samples[self.n_test : self.n_test + self.n_valid],
            samples[self.n_test + self.n_valid :],
        )
        splits = {"train": self._rows(train), "valid": self._rows(valid), "test": self._rows(test)}
        used = {s for s, _, _ in samples}
        train_keys = {problem_key(p) for _, _, p in train} if by_operands else set()
        for name, overrides in sorted(self.ood.items()):
            n = int(overrides.get("n", self.n_test))
            shifted = self.split_task(name)
            rows = shifted.sample(n, random.Random(f"{self.seed}/{name}"), exclude=used, exclude_keys=train_keys)
            used |= {s for s, _, _ in rows}  # held-out splits share no problem (a valid_ split none with a test one)
            splits[name] = self._rows(rows)
        return splits

    def split_task(self, split: str) -> ArithmeticTask:
        """The configuration a split is drawn from: this task, or it with an ``ood`` split's overrides."""
        if split not in self.ood:
            return self
        overrides = {k: v for k, v in self.ood[split].items() if k != "n"}
        return dataclasses.replace(self, ood={}, **overrides)

    # ------------------------------------------------------------------ length-generalisation formats
    def config(self) -> dict[str, Any]:
        """The task's fields, leaving out format options that are off (see :data:`FORMAT_DEFAULTS`)."""
        config = super().config()
        for key, off in FORMAT_DEFAULTS.items():
            if config[key] == off:
                del config[key]
        return config

    @property
    def target_encoding(self) -> str:
        """How the result is written: ``reversed`` with ``reverse_output``, else ``encoding``."""
        return "reversed" if self.reverse_output else self.encoding

    def _check_formats(self) -> None:
        if isinstance(self.balance, str):
            self.balance = [self.balance]
        self.balance = list(self.balance or [])
        if self.reverse_output and self.encoding != "digits":
            raise ValueError(
                f"data.task.reverse_output=true writes only the result reversed and needs data.task.encoding=digits, "
                f"not {self.encoding!r} (encoding=reversed already reverses operands and result)"
            )
        if self.index_hints and self.encoding not in ("digits", "reversed"):
            raise ValueError(
                f"data.task.index_hints=true needs a digit encoding (digits or reversed), not "
                f"data.task.encoding={self.encoding!r}"
            )
        self._check_scratchpad()
        unknown = [kind for kind in self.balance if kind not in BALANCE_KINDS]
        if unknown or len(set(self.balance)) != len(self.balance):
            raise ValueError(f"data.task.balance={self.balance} must list distinct entries of {list(BALANCE_KINDS)}")
        if "lengths" in self.balance and self.digits is None:
            raise ValueError("data.task.balance=[lengths] balances digit counts: set data.task.digits (e.g. [1, 10])")
        if "carries" in self.balance and (self.operators != ["+"] or self.negative_operands or self.min_value < 0):
            raise ValueError(
                "data.task.balance=[carries] counts the carries of sums of non-negative operands: set "
                "data.task.operators=['+'] and no negative operands (negative_operands=false, min_value >= 0)"
            )
        if "carries" in self.balance and self.base ** as_range(self.n_operands, "n_operands")[1] > 1_000_000:
            raise ValueError(
                f"data.task.balance=[carries] supports at most {max(k for k in range(1, 21) if self.base**k <= 1_000_000)} operands "
                f"in base {self.base}; lower data.task.n_operands={self.n_operands} or drop carries from balance"
            )

    def _check_scratchpad(self) -> None:
        pad = self.scratchpad
        if pad is None:
            return
        if pad not in SCRATCHPADS:
            raise ValueError(f"data.task.scratchpad={pad!r} must be null or one of {list(SCRATCHPADS)}")
        key = f"data.task.scratchpad={pad}"
        if self.encoding not in ("digits", "reversed") or self.index_hints:
            raise ValueError(f"{key} needs data.task.encoding=digits or reversed and data.task.index_hints=false")
        if self.negative_operands or (self.digits is None and self.min_value < 0):
            raise ValueError(f"{key} writes non-negative operands: set negative_operands=false and min_value >= 0")
        operators = sorted(set(self.operators))
        lo, hi = as_range(self.n_operands, "n_operands")
        wanted = REQUIREMENTS[pad]
        if operators not in wanted[0] or (wanted[1] and (lo, hi) != (2, 2)):
            ops = " or ".join(str(o) for o in wanted[0])
            count = "n_operands=2 and " if wanted[1] else ""
            raise ValueError(
                f"{key} needs data.task.{count}operators={ops} (got n_operands={self.n_operands}, "
                f"operators={self.operators}; an ood split's overrides must keep them)"
            )

    def operands(self, source: str) -> list[int]:
        """The operand values of a source text (raises :class:`NotationError` if it does not parse)."""
        groups: list[list[str]] = [[]]
        for token in source.split():
            if token in OPERATORS:
                groups.append([])
            else:
                groups[-1].append(token)
        return [decode_int(g, self.encoding, self.base, self.index_hints) for g in groups]

    def _result_digits(self, text: str) -> list[int]:
        """Digits of a result text, least significant first (leading zeros kept)."""
        tokens = self.answer_tokens(text)
        if self.target_encoding in ("digits", "reversed"):
            return significant_digits(tokens, self.target_encoding, self.base, self.index_hints)[1]
        return to_digits(decode_int(tokens, self.target_encoding, self.base), self.base)[::-1]

    # sampling balanced by operand lengths and/or carries
    # ------------------------------------------------------------------ metrics for length generalisation
    def tally_keys(self, split: str) -> tuple[str, ...]:
        """The fixed metric keys of ``split`` (the same on every rank and every epoch).

        ``acc_by_pos/<i>``: accuracy of the result digit worth ``base**i`` (0 = units, whatever the
        output order); ``acc_by_len/<d>``: exact match by the longest operand's digit count;
        ``acc_by_carries/<c>``: exact match by the number of carries (sums of non-negative
        operands only).
        """
        task = self.split_task(split)
        shortest, operand_digits = task.operand_digit_range
        result_digits = task.widest_digits[1]
        keys = [f"acc_by_pos/{i}" for i in range(result_digits)]
        keys += [f"acc_by_len/{d}" for d in range(shortest, operand_digits + 1)]
        if task.counts_carries:
            keys += [f"acc_by_carries/{c}" for c in range(result_digits)]
        return tuple(keys)

    @property
    def operand_digit_range(self) -> tuple[int, int]:
        """Fewest and most digits an operand of this configuration can have."""
        if self.digits is not None:
            shortest = as_range(self.digits, "digits")[0]
        else:
            lo, hi = self.min_value, self.max_value
            shortest = 1 if lo <= 0 <= hi else len(to_digits(min(abs(lo), abs(hi)), self.base))
        return shortest, self.widest_digits[0]

    def figures(self, predictions: dict[str, list[tuple[str, str, str | None, bool]]]) -> dict[str, Figure]:
        """``length_heatmap``: exact match by (digits of operand 1, digits of operand 2) over every
        test split together, the training lengths outlined (McLeish et al. 2024, Fig. 1)."""
        records = [
            (*self.operand_lengths(source)[:2], correct)
            for rows in predictions.values()
            for source, _, _, correct in rows
            if len(self.operands(source)) >= 2
        ]
        if not records:
            return {}
        title = f"exact match by operand lengths ({', '.join(predictions)})"
        return {"length_heatmap": length_heatmap(records, self.operand_digit_range, title=title)}

    @property
    def counts_carries(self) -> bool:
        """Whether carries are defined for every problem (sums of non-negative operands)."""
        return (
            self.operators == ["+"] and not self.negative_operands and (self.digits is not None or self.min_value >= 0)
        )

    def tally(
        self, source: str, target: str, hypothesis: str | None, correct: bool | Verdict
    ) -> dict[str, tuple[int, int]]:
        """``(hits, count)`` of one greedy hypothesis under :meth:`tally_keys` (``None``: no EOS).

        Sum these over a split (and over DDP ranks) and divide at the end; ``correct`` is the
        verifier's verdict (a :class:`~symlit.core.verdict.Verdict` or a bool: only its truth counts).
        """
        hit = int(bool(correct))
        operands = self.operands(source)
        counts: dict[str, tuple[int, int]] = {
            f"acc_by_len/{max(len(to_digits(v, self.base)) for v in operands)}": (hit, 1)
        }
        if self.counts_carries:
            counts[f"acc_by_carries/{count_carries(operands, self.base)}"] = (hit, 1)
        try:
            guess = None if hypothesis is None else self._result_digits(hypothesis)
        except NotationError:
            guess = None
        for i, hit in enumerate(position_hits(self._result_digits(target), guess)):
            counts[f"acc_by_pos/{i}"] = (int(hit), 1)
        return counts

    def tally_split(self, split: str, rows: list[tuple[str, str, str | None, bool]]) -> Tally:
        """A :class:`Tally` of ``(source, target, hypothesis, correct)`` rows of one split."""
        tally = Tally(self.tally_keys(split))
        for source, target, hypothesis, correct in rows:
            for key, (hits, count) in self.tally(source, target, hypothesis, correct).items():
                tally.add(key, hits, count)
        return tally

    def operand_lengths(self, source: str) -> tuple[int, ...]:
        """Digit counts of the operands of a source (the heat map's axes)."""
        return tuple(len(to_digits(v, self.base)) for v in self.operands(source))

    # ------------------------------------------------------------------ text for people
    def parse_input(self, text: str) -> str:
        """Source tokens of an infix expression (``"23 + 15"`` -> ``INT+ 2 3 + INT+ 1 5`` in the
        task's encoding); ``ValueError`` with a message for the user."""
        return self.format_problem(_problem_of_text(self, text))[0]

    def reference(self, source: str) -> str:
        """The target (the exact value) of a source, computed."""
        _, ops = _split_operands(source.split())
        return self.format_problem((tuple(self.operands(source)), tuple(ops)))[1]

    def render(self, tokens: str) -> str:
        """``INT+ 2 3 + INT+ 1 5`` -> ``23 + 15``; tokens that spell no number are shown as they are.

        A problem has at least two operands, so a single number is a result, written in the task's
        result encoding (``reverse_output`` writes results reversed under a plain ``encoding``)."""
        groups, ops = _split_operands(tokens.split())
        try:
            if ops:
                values = [str(v) for v in self.operands(tokens)]
            else:
                values = [str(decode_int(groups[0], self.target_encoding, self.base, self.index_hints))]
        except NotationError:
            return tokens
        out = [values[0]]
        for op, value in zip(ops, values[1:]):
            out += [op, value]
        return " ".join(out)

    def example_input(self) -> str:
        return "23" + "".join(f" {op} {n}" for op, n in zip(self.operators, (15, 7, 4)))

    def embedding_groups(self, vocabulary: list[str]) -> dict[str, list[str]]:
        """Digits and numbers; signs and operators."""
        numbers = [
            t for t in vocabulary if re.fullmatch(r"-?\d+", t) or (len(t) == 1 and t in DIGIT_SYMBOLS[: self.base])
        ]
        return {
            "digit / number": sorted(set(numbers), key=lambda t: (len(t), t)),
            "sign / operator": [t for t in vocabulary if t in ("INT+", "INT-", *OPERATORS)],
        }


def _problem_of_text(task: ArithmeticTask, text: str) -> Problem:
    """Operands and operators of ``"23 + 15 * -4"``; ``ValueError`` with a message for the user."""
    items = re.findall(r"\d+|\S", text)
    if not items:
        raise ValueError("empty input; type an expression such as 23 + 15")
    operands: list[int] = []
    operators: list[str] = []
    pos = 0
    while True:
        sign = 1
        if pos < len(items) and items[pos] in ("+", "-"):  # a unary sign
            sign = -1 if items[pos] == "-" else 1
            pos += 1
        if pos >= len(items):
            raise ValueError(f"{text.strip()!r} ends with an operator; expected a number after it")
        if not items[pos].isdigit():
            raise ValueError(f"unexpected {items[pos]!r} in {text.strip()!r}; expected a whole number")
        operands.append(sign * int(items[pos]))
        pos += 1
        if pos == len(items):
            break
        op = items[pos]
        if op not in OPERATORS:
            raise ValueError(f"unexpected {op!r} in {text.strip()!r}; expected one of {' '.join(OPERATORS)}")
        if op not in task.operators:
            raise ValueError(f"{op!r} is not an operator of this model's task (trained on {' '.join(task.operators)})")
        operators.append(op)
        pos += 1
    if not operators:
        raise ValueError(f"{text.strip()!r} has no operator; type an expression such as 23 + 15")
    return tuple(operands), tuple(operators)


def _split_operands(tokens: list[str]) -> tuple[list[list[str]], list[str]]:
    """The token groups of the operands of a source, and its operators."""
    groups: list[list[str]] = [[]]
    ops: list[str] = []
    for token in tokens:
        if token in OPERATORS and groups[-1]:
            groups.append([])
            ops.append(token)
        else:
            groups[-1].append(token)
    return groups, ops
