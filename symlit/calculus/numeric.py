"""Fast numeric evaluation of prefix expressions at given points (floats or complex numbers).

Used by the generators (is an expression finite somewhere?) and by the verifiers (do two
expressions agree at random points?). Evaluation never raises on a domain error: the value is
``nan``. Unknown tokens (``Y``, ``derivative``...) raise :class:`~symlit.calculus.prefix.PrefixError`.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from symlit.calculus.prefix import INT_TOKENS, OPERATORS, PrefixError
from symlit.core.notation import DIGIT_SYMBOLS

NAN = float("nan")
LIMIT = 1e150  # larger magnitudes count as overflow


def _sign(v: complex) -> complex:
    return 0.0 if v == 0 else v / abs(v)


def _inv(fn):
    return lambda v: fn(1 / v)


def _functions(m: Any, sign: Callable) -> dict[str, Callable]:
    """The functions of prefix expressions over ``math`` (reals) or ``cmath`` (complex numbers)."""
    same = (
        "exp",
        "sqrt",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
    )
    table: dict[str, Callable] = {name: getattr(m, name) for name in same}
    table |= {"ln": m.log, "abs": abs, "sign": sign}
    table |= {"cot": lambda v: 1 / m.tan(v), "sec": lambda v: 1 / m.cos(v), "csc": lambda v: 1 / m.sin(v)}
    table |= {"coth": lambda v: 1 / m.tanh(v), "sech": lambda v: 1 / m.cosh(v), "csch": lambda v: 1 / m.sinh(v)}
    inverse = {"acot": "atan", "asec": "acos", "acsc": "asin", "acoth": "atanh", "asech": "acosh", "acsch": "asinh"}
    return table | {name: _inv(getattr(m, of)) for name, of in inverse.items()}


REAL_FUNCTIONS = _functions(math, lambda v: float((v > 0) - (v < 0)))
COMPLEX_FUNCTIONS = _functions(cmath, _sign)
# functions the reference's ``is_valid_expr`` replaces by their argument before evaluating
REFERENCE_STRIPPED = frozenset(
    {
        "abs",
        "sign",
        "ln",
        "sin",
        "cos",
        "tan",
        "sec",
        "csc",
        "cot",
        "asin",
        "acos",
        "atan",
        "asec",
        "acsc",
        "acot",
        "tanh",
        "sech",
        "csch",
        "coth",
        "asinh",
        "acosh",
        "atanh",
        "asech",
        "acoth",
        "acsch",
    }
)
POWERS = {"inv": -1, "pow2": 2, "pow3": 3, "pow4": 4, "pow5": 5}
CONSTANT_VALUES = {"pi": math.pi, "E": math.e, "I": 1j}


def _power(b, e, complex_mode: bool):
    if b == 0 and (e.real if isinstance(e, complex) else e) < 0:
        return NAN
    if not complex_mode and b < 0 and e != int(e):
        return NAN
    if isinstance(e, (int, float)) and e == int(e) and abs(e) <= 64:
        return b ** int(e)
    return b**e


def _binary(op: str, a, b, complex_mode: bool):
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return NAN if b == 0 else a / b
    if op == "pow":
        return _power(a, b, complex_mode)
    if op == "rac":
        return NAN if b == 0 else _power(a, 1 / b, complex_mode)
    raise PrefixError(f"operator {op!r} cannot be evaluated numerically")


def evaluate_prefix(
    tokens: Sequence[str],
    values: Mapping[str, complex],
    complex_mode: bool = False,
    base: int = 10,
    identity: frozenset[str] = frozenset(),
) -> complex:
    """Value of a prefix expression with ``values`` for its symbols; ``nan`` on domain errors/overflow.

    In real mode (the default) a complex intermediate value gives ``nan``. Unary functions named in
    ``identity`` are evaluated as the identity (the reference validity check strips them, see
    :data:`REFERENCE_STRIPPED`).
    """
    functions = COMPLEX_FUNCTIONS if complex_mode else REAL_FUNCTIONS
    stack: list[complex] = []
    # evaluate right to left: operands are pushed, an operator pops its arguments
    digits: list[str] = []
    for pos in range(len(tokens) - 1, -1, -1):
        tok = tokens[pos]
        if len(tok) == 1 and tok in DIGIT_SYMBOLS[:base] and tok not in values:
            digits.append(tok)
            continue
        if tok in INT_TOKENS:
            if not digits:
                raise PrefixError(f"integer without digits at position {pos}")
            value = 0
            for d in reversed(digits):
                value = value * base + DIGIT_SYMBOLS.index(d)
            digits = []
            stack.append(float(value if tok == "INT+" else -value))
            continue
        if digits:
            raise PrefixError(f"digits without a sign token after position {pos}")
        if tok in values:
            stack.append(values[tok])
        elif tok in CONSTANT_VALUES:
            v = CONSTANT_VALUES[tok]
            stack.append(v if complex_mode or not isinstance(v, complex) else NAN)
        elif OPERATORS.get(tok) == 2:
            if len(stack) < 2:
                raise PrefixError(f"operator {tok!r} at position {pos} lacks arguments")
            a, b = stack.pop(), stack.pop()
            stack.append(_safe(lambda: _binary(tok, a, b, complex_mode)))
        elif OPERATORS.get(tok) == 1 and tok != "f":
            if not stack:
                raise PrefixError(f"operator {tok!r} at position {pos} lacks an argument")
            a = stack.pop()
            if tok in identity:
                stack.append(a)
            elif tok in POWERS:
                stack.append(_safe(lambda: _power(a, POWERS[tok], complex_mode)))
            else:
                fn = functions[tok]
                stack.append(_safe(lambda: fn(a) if complex_mode or not isinstance(a, complex) else NAN))
        else:
            raise PrefixError(f"token {tok!r} at position {pos} cannot be evaluated numerically")
    if digits or len(stack) != 1:
        raise PrefixError("not exactly one expression")
    return stack[0]


def _safe(fn: Callable[[], complex]) -> complex:
    try:
        v = fn()
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return NAN
    if isinstance(v, complex):
        if not (math.isfinite(v.real) and math.isfinite(v.imag)) or abs(v) > LIMIT:
            return NAN
        if v.imag == 0:
            return v.real
        return v
    v = float(v)
    return v if math.isfinite(v) and abs(v) <= LIMIT else NAN


def is_finite(v: complex) -> bool:
    """Whether a value returned by :func:`evaluate_prefix` is a usable number."""
    return not (isinstance(v, float) and math.isnan(v)) and not (isinstance(v, complex) and cmath.isnan(v))


def is_real_finite(v: complex) -> bool:
    return isinstance(v, float) and math.isfinite(v)


__all__ = ["REFERENCE_STRIPPED", "evaluate_prefix", "is_finite", "is_real_finite"]
