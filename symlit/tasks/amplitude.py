"""What the QED and QCD tasks share: the amplitude of a Feynman diagram in, its squared amplitude out.

* :func:`unit`: the deterministic hash that sends a split group to train, valid or test;
* :class:`AmplitudeVerifier`: an exact token match, else numeric agreement at random kinematic points;
* :class:`AmplitudeTask`: the shared settings (notation, split level and fractions, verification
  points), their checks, the split of rows by group, and the process class of a bucket.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import sympy

from symlit.qed import kinematics
from symlit.qed.symba_format import Leg
from symlit.qed.tokens import check_notation, from_tokens, token_score
from symlit.tasks.base import Rows, Task, Verdict, check_fractions, exact_match

log = logging.getLogger(__name__)


def unit(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def process_class(legs: Iterable[Leg], leg_class: Callable[[Leg], str]) -> str:
    """``"l l~ -> q q~"``: the classes of the incoming and the outgoing legs, each side sorted."""
    legs = list(legs)
    ins = sorted(leg_class(l) for l in legs if l.incoming)
    outs = sorted(leg_class(l) for l in legs if not l.incoming)
    return f"{' '.join(ins)} -> {' '.join(outs)}"


def warn_unfactored(simplified: Sequence[bool], timeout: float) -> None:
    """Log how many of the generated squared amplitudes (``simplified``: one flag per row) were not
    factored within ``timeout`` CPU seconds and were kept expanded."""
    slow = sum(not s for s in simplified)
    if slow:
        log.warning(
            "%d of %d squared amplitudes were not factored within %g CPU s (kept expanded)",
            slow,
            len(simplified),
            timeout,
        )


class AmplitudeVerifier:
    """Verification of squared amplitudes, shared by the QED and QCD tasks: an exact token match,
    else numeric agreement of target and hypothesis at ``n_points`` random points of the source's
    process (:meth:`_point`) within ``tolerance``. A hypothesis that does not decode is malformed."""

    notation: str
    n_points: int
    tolerance: float

    def decode(self, tokens: str) -> sympy.Expr:
        """A target or hypothesis token string as SymPy."""
        return from_tokens(tokens, self.notation)

    def _point(self, source: str, rng: random.Random, symbols: list[sympy.Symbol]) -> dict[str, object]:
        raise NotImplementedError

    def numeric_equal(self, source: str, target: str, got: sympy.Expr) -> bool:
        """The decoded hypothesis ``got`` and the target agree at ``n_points`` random points of the source's process."""
        want = self.decode(target)
        rng = random.Random(unit(source + target))
        symbols = sorted(want.free_symbols | got.free_symbols, key=str)
        points = (self._point(source, rng, symbols) for _ in range(self.n_points))
        return kinematics.agree_at(want, got, points, self.tolerance)

    def verify(self, source: str, target: str, hypothesis: str) -> Verdict:
        """``exact`` token match, else ``numeric`` equivalence; ``malformed`` when the hypothesis does not decode."""
        if exact_match(target, hypothesis):
            return Verdict("correct", "exact")
        try:
            got = self.decode(hypothesis)
        except Exception as err:  # noqa: BLE001 - any decoding failure: the hypothesis is not an amplitude
            return Verdict("malformed", "parse", f"{type(err).__name__}: {err}")
        return Verdict.of(self.numeric_equal(source, target, got), "numeric")

    def scores(self, source: str, target: str, hypothesis: str, verdict: Verdict) -> dict[str, float]:
        """SYMBA's token score and numeric equivalence (0/1: the verdict, not recomputed)."""
        return {"token_score": token_score(target.split(), hypothesis.split()), "numeric_equiv": float(verdict.ok)}


@dataclass
class AmplitudeTask(AmplitudeVerifier, Task):
    """The settings both amplitude tasks have, and how their rows are split.

    Rows are grouped (by a canonical key of the level ``split_by`` names, or one group per row); a
    group lands in valid, test or train by :func:`unit` of its name, so a group is never on two
    sides and the split does not depend on the order of the rows.
    """

    notation: str = "hybrid_short"
    split_by: str = "row"
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    n_points: int = 3
    tolerance: float = 1e-6
    max_rows: int | None = None

    def check_settings(self, split_by: Sequence[str], particles: Mapping[str, object], hint: str = "") -> None:
        """The shared settings are valid (``split_by`` one of ``split_by``; ``hint`` follows the
        message), as is ``particles`` when set, a list of names from ``particles``."""
        check_notation(self.notation)
        if self.split_by not in split_by:
            raise ValueError(f"data.task.split_by={self.split_by!r} must be one of {tuple(split_by)}{hint}")
        check_fractions(self.valid_fraction, self.test_fraction)
        chosen = getattr(self, "particles", None)
        if chosen is not None:
            self.particles = [str(p) for p in chosen]
            unknown = [p for p in self.particles if p not in particles]
            if unknown:
                raise ValueError(f"data.task.particles has unknown particles {unknown}; known: {sorted(particles)}")
        if self.n_points < 1:
            raise ValueError(f"data.task.n_points={self.n_points} must be >= 1")

    def destination(self, group: str) -> str:
        """``valid``, ``test`` or ``train`` for the rows of ``group``."""
        u = unit(group)
        return "valid" if u < self.valid_fraction else ("test" if 1 - u <= self.test_fraction else "train")

    def split_rows(
        self, rows: Sequence[Mapping[str, str]], destinations: Iterable[str], names: Sequence[str]
    ) -> dict[str, Rows]:
        """``source``, ``target`` and ``process`` of each row in the split named by ``destinations``
        (one per row); fails when nothing is left for training."""
        splits: dict[str, Rows] = {n: {"source": [], "target": [], "process": []} for n in names}
        for row, dest in zip(rows, destinations):
            for k in ("source", "target", "process"):
                splits[dest][k].append(row[k])
        if not splits["train"]["source"]:
            raise ValueError(f"{self.name}: no training rows left after splitting")
        return splits
