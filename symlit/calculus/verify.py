"""Verifiers: is a hypothesis a correct answer, up to mathematical equivalence?

* :func:`check_integral`: the source is ``sub Y' <f>``; the hypothesis ``H`` is correct when
  ``dH/dx = f``. ``H`` is differentiated with SymPy; ``dH/dx - f`` is compared with zero
  structurally, then numerically at random points, then (only when the numeric check cannot
  decide) with a time-limited ``sympy.simplify``.
* :func:`check_ode`: the source is an equation in ``x, Y, Y', Y''``; the hypothesis ``H`` is
  correct when substituting ``Y = H`` makes the equation vanish identically (for random values
  of the free constants), and ``H`` has as many free constants as the order of the equation
  (a general solution, like the reference answers). An equation without ``Y'`` (order 1) or
  ``Y''`` (order 2) is not an ODE of that order: every hypothesis is rejected.
* :func:`equivalent`: two expressions are equal (structure, numeric check, simplify).

The numeric check evaluates both sides at 24 random points over a wide range (variables in
``±[0.05, 10]``, constants in ``±[0.3, 4]``; real arithmetic, complex arithmetic if too few real
points are defined); sides agree at a point when they differ by at most ``1e-7`` times the sum of
the magnitudes of their terms. It decides when at least 4 points are defined: equal only when
they agree at *every* defined point. An identity that holds on part of the domain only (e.g.
``acos(cos x) = x``, true on ``[0, pi]``) is rejected, with the method ``partial_domain``. Each
``check_*`` function returns a :class:`~symlit.core.verdict.Verdict` (true when correct): a
hypothesis that is not a prefix expression is ``malformed``; a SymPy failure or an exhausted time
limit is ``wrong`` (methods ``error:...``, ``timeout``); never an exception.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence

import sympy as sp

from symlit.calculus import numeric
from symlit.calculus.cleaning import simplify_within
from symlit.calculus.prefix import (
    COEFFICIENTS,
    D2FX,
    DFX,
    FX,
    VARIABLES,
    PrefixError,
    UnsupportedExpression,
    prefix_to_sympy,
    sympy_to_prefix,
)
from symlit.core.limits import SampleTimeout, owns, time_limit
from symlit.core.verdict import Verdict

N_POINTS = 24
VARIABLE_RANGE = (0.05, 10.0)  # magnitudes of sampled variables (both signs)
CONSTANT_RANGE = (0.3, 4.0)  # magnitudes of sampled free constants (both signs)
MIN_POINTS = 4
RTOL = 1e-7
INTEGRATION_HEADS = (("sub", "Y'"), ("sub", "derivative", "f", "x", "x"))


def _tokens(text: str | Sequence[str]) -> list[str]:
    return text.split() if isinstance(text, str) else list(text)


def integrand_tokens(source: str | Sequence[str]) -> list[str]:
    """The ``f`` of an integration source ``sub Y' <f>`` (cleaned or uncleaned form)."""
    tokens = _tokens(source)
    for head in INTEGRATION_HEADS:
        if tuple(tokens[: len(head)]) == head and len(tokens) > len(head):
            return tokens[len(head) :]
    raise PrefixError(
        f'an integration source starts with "sub Y\'" followed by the integrand, got {" ".join(tokens[:6])!r}'
    )


# ---------------------------------------------------------------------------- numeric comparison
def _terms(expr: sp.Expr, base: int) -> list[list[str]]:
    args = expr.args if expr.is_Add else (expr,)
    return [sympy_to_prefix(a, base, clean=True) for a in args]


def _points(seed_text: str, symbols: Sequence[str]) -> list[dict[str, float]]:
    rng = random.Random(zlib.crc32(seed_text.encode()))
    points = []
    for _ in range(N_POINTS):
        point = {}
        for name in symbols:
            lo, hi = VARIABLE_RANGE if name in VARIABLES else CONSTANT_RANGE
            point[name] = rng.uniform(lo, hi) * rng.choice((-1, 1))
        points.append(point)
    return points


def _side(terms: list[list[str]], values: dict, complex_mode: bool, base: int) -> tuple[complex, float] | None:
    total, scale = 0.0, 0.0
    for term in terms:
        v = numeric.evaluate_prefix(term, values, complex_mode=complex_mode, base=base)
        if not numeric.is_finite(v) or (not complex_mode and isinstance(v, complex)):
            return None
        total += v
        scale += abs(v)
    return total, scale


def numeric_compare(
    lhs: list[list[str]],
    rhs: list[list[str]],
    points: list[dict[str, float]],
    base: int = 10,
    extra: list[dict[str, float]] | None = None,
) -> str:
    """``"equal"`` (agree at every defined point), ``"partial"`` (at some), ``"different"`` (at none) or
    ``"undecided"`` (fewer than ``MIN_POINTS`` defined): sum of ``lhs`` terms vs sum of ``rhs`` terms.

    ``extra[i]`` adds values (e.g. ``Y``, ``Y'``) to point ``i``; a ``None`` entry skips the point.
    """
    for complex_mode in (False, True):
        defined = disagree = 0
        for i, point in enumerate(points):
            values = dict(point)
            if extra is not None:
                if extra[i] is None:
                    continue
                if not complex_mode and any(isinstance(v, complex) for v in extra[i].values()):
                    continue
                values.update(extra[i])
            a, b = _side(lhs, values, complex_mode, base), _side(rhs, values, complex_mode, base)
            if a is None or b is None:
                continue
            defined += 1
            if abs(a[0] - b[0]) > RTOL * (a[1] + b[1]) + 1e-12:
                disagree += 1
        if defined >= MIN_POINTS:
            return "equal" if disagree == 0 else "different" if disagree == defined else "partial"
    return "undecided"


def _numeric_verdict(outcome: str) -> Verdict:
    return Verdict.of(outcome == "equal", "partial_domain" if outcome == "partial" else "numeric")


def _decide(compare: Callable[[], str], residual: sp.Expr, simplify_seconds: float) -> Verdict:
    """The numeric comparison ``compare()`` decides when it can; else whether ``residual``
    simplifies to zero within ``simplify_seconds``; else ``undecided`` (wrong)."""
    try:
        outcome = compare()
    except (UnsupportedExpression, PrefixError):
        outcome = "undecided"
    if outcome != "undecided":
        return _numeric_verdict(outcome)
    zero = _simplifies_to_zero(residual, simplify_seconds)
    return Verdict.of(bool(zero), "simplify" if zero is not None else "undecided")


def _simplifies_to_zero(expr: sp.Expr, seconds: float) -> bool | None:
    """``simplify(expr) == 0``; ``None`` when the time limit ran out or SymPy failed."""
    simplified = simplify_within(expr, seconds)
    return None if simplified is None else simplified == 0


def _symbol_names(*exprs: sp.Expr) -> list[str]:
    names = {s.name for e in exprs for s in e.free_symbols}
    return sorted(names & set((*VARIABLES, *COEFFICIENTS)))


def _guard(check, *args, timeout: float, **kwargs) -> Verdict:
    """Run ``check`` under an overall time limit, mapping every failure to a ``False`` verdict."""
    try:
        with time_limit(timeout) as token:
            try:
                return check(*args, **kwargs)
            except SampleTimeout as err:
                if owns(err, token):
                    return Verdict.of(False, "timeout")
                raise
    except PrefixError:
        return Verdict("malformed", "parse")
    except SampleTimeout:
        raise  # an enclosing limit: let its owner count it
    except (RecursionError, MemoryError) as err:
        return Verdict.of(False, f"error:{type(err).__name__}")
    except Exception as err:  # noqa: BLE001 - SymPy raises many kinds; any failure means "not verified"
        return Verdict.of(False, f"error:{type(err).__name__}")


# ---------------------------------------------------------------------------- integration
def _check_integral(
    source: str | Sequence[str], hypothesis: str | Sequence[str], base: int, simplify_seconds: float
) -> Verdict:
    f = prefix_to_sympy(integrand_tokens(source), base)
    H = prefix_to_sympy(hypothesis, base)
    if H.has(FX) or H.has(sp.Derivative):
        return Verdict("malformed", "parse")
    dH = sp.diff(H, sp.Symbol("x", real=True, nonzero=True))
    difference = dH - f
    if difference == 0:
        return Verdict.of(True, "structural")
    seed = " ".join(_tokens(hypothesis))
    return _decide(
        lambda: numeric_compare(_terms(dH, base), _terms(f, base), _points(seed, _symbol_names(dH, f)), base),
        difference,
        simplify_seconds,
    )


def check_integral(
    source: str | Sequence[str],
    hypothesis: str | Sequence[str],
    base: int = 10,
    timeout: float = 10.0,
    simplify_seconds: float = 3.0,
) -> Verdict:
    """Whether ``d(hypothesis)/dx`` equals the integrand of ``source``, with how it was decided."""
    return _guard(_check_integral, source, hypothesis, base, simplify_seconds, timeout=timeout)


# ---------------------------------------------------------------------------- ODEs
def _check_ode(
    source: str | Sequence[str],
    hypothesis: str | Sequence[str],
    order: int,
    base: int,
    simplify_seconds: float,
    require_constants: bool,
) -> Verdict:
    eq = prefix_to_sympy(source, base)
    if not eq.has(DFX if order == 1 else D2FX):
        return Verdict.of(False, "no_derivative")
    H = prefix_to_sympy(hypothesis, base)
    if H.has(FX) or H.has(sp.Derivative):
        return Verdict("malformed", "parse")
    if require_constants:
        constants = [s for s in H.free_symbols if s.name in COEFFICIENTS]
        if len(constants) < order:
            return Verdict.of(False, "too_few_constants")
    x = sp.Symbol("x", real=True, nonzero=True)
    H1 = sp.diff(H, x)
    H2 = sp.diff(H1, x) if eq.has(D2FX) else None
    mapping = {FX: H, DFX: H1}
    if H2 is not None:
        mapping[D2FX] = H2
    residual = eq.xreplace(mapping)
    if residual.has(sp.Derivative):
        residual = residual.doit()
    if residual == 0:
        return Verdict.of(True, "structural")

    def compare() -> str:
        names = _symbol_names(eq, H)
        points = _points(" ".join(_tokens(hypothesis)), names)
        parts = [sympy_to_prefix(e, base) for e in (H, H1, H2) if e is not None]
        extra: list[dict[str, complex] | None] = []
        for point in points:
            vals = [numeric.evaluate_prefix(p, point, complex_mode=True, base=base) for p in parts]
            if not all(numeric.is_finite(v) for v in vals):
                extra.append(None)
                continue
            extra.append(dict(zip(("Y", "Y'", "Y''"), vals)))
        return numeric_compare(_terms(eq, base), [], points, base, extra=extra)

    return _decide(compare, residual, simplify_seconds)


def check_ode(
    source: str | Sequence[str],
    hypothesis: str | Sequence[str],
    order: int = 1,
    base: int = 10,
    timeout: float = 10.0,
    simplify_seconds: float = 3.0,
    require_constants: bool = True,
) -> Verdict:
    """Whether ``Y = hypothesis`` solves the equation ``source = 0``, with how it was decided."""
    return _guard(_check_ode, source, hypothesis, order, base, simplify_seconds, require_constants, timeout=timeout)


# ---------------------------------------------------------------------------- equivalence
def _check_equivalent(
    expected: str | Sequence[str], hypothesis: str | Sequence[str], base: int, simplify_seconds: float
) -> Verdict:
    a = prefix_to_sympy(expected, base)
    b = prefix_to_sympy(hypothesis, base)
    if a == b:
        return Verdict.of(True, "structural")
    points = _points(" ".join(_tokens(hypothesis)), _symbol_names(a, b))
    return _decide(lambda: numeric_compare(_terms(a, base), _terms(b, base), points, base), a - b, simplify_seconds)


def equivalent(
    expected: str | Sequence[str],
    hypothesis: str | Sequence[str],
    base: int = 10,
    timeout: float = 10.0,
    simplify_seconds: float = 3.0,
) -> bool:
    """``True`` when two prefix expressions are mathematically equal."""
    return _guard(_check_equivalent, expected, hypothesis, base, simplify_seconds, timeout=timeout).ok
