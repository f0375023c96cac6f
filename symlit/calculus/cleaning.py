"""Cleaning and checking the expressions the calculus generators draw: additive constants and
constant factors removed, integration constants reduced and renumbered, an equation solved for a
constant, a time-limited ``simplify``, and the checks that reject a sample (bad values, nested
exponentials, nowhere finite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from symlit.calculus import numeric
from symlit.calculus.prefix import COEFFICIENTS, OPERATORS, SYMBOLS, PrefixError, X
from symlit.core.limits import SampleTimeout, owns, time_limit
from symlit.core.notation import DIGIT_SYMBOLS

EVAL_POINTS = (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 2.1, 3.1, -0.01, -0.1, -0.3, -0.5, -0.7, -0.9, -1.1, -2.1, -3.1)
EXP_LIKE = frozenset({"exp", "sinh", "cosh"})
A8, A9 = SYMBOLS["a8"], SYMBOLS["a9"]  # the integration constants of ODE solutions


def _has_var(expr: sp.Expr, variables: Sequence[sp.Symbol]) -> bool:
    return any(v in expr.free_symbols for v in variables)


def remove_additive_constant(expr: sp.Expr, variables: Sequence[sp.Symbol] = (X,)) -> sp.Expr:
    """``x + 3 + a0`` -> ``x``: drop the terms of a root sum that contain no variable."""
    if expr.is_Add:
        keep = [a for a in expr.args if _has_var(a, variables)]
        if keep and len(keep) < len(expr.args):
            return sp.Add(*keep)
    return expr


def split_constant_factor(expr: sp.Expr, variables: Sequence[sp.Symbol] = (X,)) -> tuple[sp.Expr, sp.Expr]:
    """``3*a0*x*sin(x)`` -> ``(x*sin(x), 3*a0)``: the variable part and the constant factor of a product."""
    if not expr.is_Mul:
        return expr, sp.S.One
    var = [a for a in expr.args if _has_var(a, variables)]
    const = [a for a in expr.args if not _has_var(a, variables)]
    return sp.Mul(*var), sp.Mul(*const)


def reduce_coefficients(
    expr: sp.Expr, coefficients: Sequence[sp.Symbol], variables: Sequence[sp.Symbol] = (X,)
) -> sp.Expr:
    """Replace the largest variable-free sub-expression holding a coefficient by the coefficient.

    ``sqrt(x)*sqrt(1/a0)`` -> ``a0*sqrt(x)``, ``cos(x + 2*a0 + 1)`` -> ``cos(x + a0)``: a free
    constant can absorb any function of itself, so the expression family is unchanged.
    """
    placeholder = sp.Dummy("c")
    changed = True
    while changed:
        changed = False
        for a in coefficients:
            if a not in expr.free_symbols:
                continue
            for sub in sp.preorder_traversal(expr):
                if sub == a or a not in sub.free_symbols or _has_var(sub, variables):
                    continue
                replaced = expr.xreplace({sub: placeholder})
                if a not in replaced.free_symbols:
                    expr = replaced.xreplace({placeholder: a})
                    changed = True
                    break
            if changed:
                break
    return expr


def absorb_numbers(expr: sp.Expr, coefficient: sp.Symbol) -> sp.Expr:
    """``sqrt(10)*a0*x`` -> ``a0*x``, ``sin(a0 + x + 9/7)`` -> ``sin(a0 + x)``: numbers next to a
    free constant in the same sum or product are absorbed into it."""
    parent = next((p for p in sp.preorder_traversal(expr) if coefficient in p.args), None)
    if parent is None or not (parent.is_Add or parent.is_Mul):
        return expr
    numbers = [a for a in parent.args if not a.free_symbols]
    if not numbers:
        return expr
    rest = parent.func(*numbers)
    return expr.subs(coefficient, coefficient - rest if parent.is_Add else coefficient / rest)


def reindex_coefficients(expr: sp.Expr, coefficients: Sequence[sp.Symbol]) -> sp.Expr:
    """Rename the coefficients present to the first ones, in order (``a3 + a7`` -> ``a0 + a1``)."""
    present = sorted((c for c in expr.free_symbols if c in coefficients), key=lambda c: c.name)
    mapping = {old: new for old, new in zip(present, coefficients) if old != new}
    return expr.xreplace(mapping) if mapping else expr


def _smallest_holding(expr: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
    """The smallest sub-expression holding every occurrence of ``symbol``."""
    while True:
        holders = [a for a in expr.args if symbol in a.free_symbols]
        if len(holders) != 1 or holders[0] == symbol:
            return expr
        expr = holders[0]


def clean_ode2_solution(expr: sp.Expr, constants: Sequence[sp.Symbol] = (A8, A9)) -> sp.Expr:
    """In ``a8 + 3 + x`` or ``a8*(2*cos(1))*exp(x)``, drop the numbers next to a free constant that
    appears once (reference ``clean_degree2_solution``)."""
    for _ in range(10):
        last = expr
        for a in constants:
            if a not in expr.free_symbols:
                return expr
            small = _smallest_holding(expr, a)
            if (
                (small.is_Add or small.is_Mul)
                and a in small.args
                and sum(1 for s in sp.preorder_traversal(small) if s == a) == 1
            ):
                if X in small.free_symbols:
                    kept = small.func(*[arg for arg in small.args if arg == a or X in arg.free_symbols])
                else:
                    kept = a
                expr = expr.xreplace({small: kept})
        if expr == last:
            break
    return expr


def drop_nonzero_factors(eq: sp.Expr, required: sp.Expr) -> sp.Expr:
    """Factor an equation ``eq = 0`` and keep only the factors that may vanish and hold ``required``."""
    try:
        with time_limit(1.0) as token:
            factored = sp.factor(eq)
    except SampleTimeout as err:
        if owns(err, token):
            return eq
        raise
    if not factored.is_Mul:
        return eq
    keep = [a for a in factored.args if not a.is_nonzero and a.has(required)]
    if not keep:
        return eq
    return keep[0] if len(keep) == 1 else sp.Mul(*keep)


INVERSE_FUNCTIONS = {
    sp.exp: sp.log,
    sp.log: sp.exp,
    sp.sin: sp.asin,
    sp.asin: sp.sin,
    sp.cos: sp.acos,
    sp.acos: sp.cos,
    sp.tan: sp.atan,
    sp.atan: sp.tan,
    sp.cot: sp.acot,
    sp.acot: sp.cot,
    sp.sinh: sp.asinh,
    sp.asinh: sp.sinh,
    sp.cosh: sp.acosh,
    sp.acosh: sp.cosh,
    sp.tanh: sp.atanh,
    sp.atanh: sp.tanh,
    sp.coth: sp.acoth,
    sp.acoth: sp.coth,
}


SIMPLIFY_FAILURES = (RecursionError, ValueError, TypeError, NotImplementedError, AttributeError, ZeroDivisionError)
"""The exceptions of a ``sympy.simplify`` that fails on its input (:func:`simplify_within`)."""


def simplify_within(expr: sp.Expr, seconds: float | None) -> sp.Expr | None:
    """``sympy.simplify(expr)`` under a :func:`~symlit.core.limits.time_limit` of ``seconds``
    (``None`` or ``<= 0``: no limit); ``None`` when that limit runs out or SymPy fails with one of
    :data:`SIMPLIFY_FAILURES`. An enclosing time limit that runs out is raised, not absorbed."""
    try:
        with time_limit(seconds) as token:
            return sp.simplify(expr)
    except SampleTimeout as err:
        if owns(err, token):
            return None
        raise
    except SIMPLIFY_FAILURES:
        return None


def isolate(equation: sp.Expr, symbol: sp.Symbol) -> sp.Expr | None:
    """Solve ``equation = 0`` for a ``symbol`` that occurs exactly once, by undoing the operations
    around it (principal branches); ``None`` when it occurs more than once or under an operation
    without an inverse here."""
    if sum(1 for node in sp.preorder_traversal(equation) if node == symbol) != 1:
        return None
    expr, value = equation, sp.S.Zero
    while expr != symbol:
        if expr.is_Add or expr.is_Mul:
            holder = next(a for a in expr.args if symbol in a.free_symbols)
            rest = [a for a in expr.args if a is not holder]
            if expr.is_Add:
                value = value - sp.Add(*rest)
            else:
                rest_value = sp.Mul(*rest)
                if rest_value == 0:
                    return None
                value = value / rest_value
            expr = holder
        elif expr.is_Pow:
            b, e = expr.args
            if symbol in b.free_symbols:
                if e == 0:
                    return None
                value, expr = value ** (1 / e), b
            else:
                if b in (0, 1):
                    return None
                value, expr = sp.log(value) / sp.log(b), e
        elif type(expr) in INVERSE_FUNCTIONS:
            value, expr = INVERSE_FUNCTIONS[type(expr)](value), expr.args[0]
        else:
            return None
    return value


def direct_solution(equation: sp.Expr, constant: sp.Symbol) -> sp.Expr | None:
    """``equation = 0`` solved for ``constant`` by isolation or, if linear in it, directly; else ``None``."""
    solution = isolate(equation, constant)
    if solution is None and constant in equation.free_symbols:
        slope = sp.diff(equation, constant)
        if slope != 0 and constant not in slope.free_symbols:
            solution = -equation.xreplace({constant: sp.S.Zero}) / slope
    return solution


def has_bad_values(*exprs: sp.Expr) -> str | None:
    """The rejection cause if an expression holds ``nan``/infinities (``inf_nan``) or ``I`` (``complex``)."""
    for e in exprs:
        if e.has(sp.nan, sp.oo, -sp.oo, sp.zoo) or e.has(sp.AccumBounds):
            return "inf_nan"
        if e.has(sp.I):
            return "complex"
    return None


def nested_exp_depth(tokens: Sequence[str]) -> int:
    """Deepest nesting of ``exp``/``sinh``/``cosh`` in a prefix expression (``exp exp x`` -> 2)."""
    depths: list[int] = []
    for tok in reversed(tokens):
        arity = OPERATORS.get(tok, 0)
        if arity:
            args = [depths.pop() for _ in range(min(arity, len(depths)))]
            depths.append(max(args, default=0) + (tok in EXP_LIKE))
        elif not (len(tok) == 1 and tok in DIGIT_SYMBOLS):  # digits belong to the INT token before them
            depths.append(0)
    return max(depths, default=0)


def finite_somewhere(
    tokens: Sequence[str],
    base: int = 10,
    points: Sequence[float] = EVAL_POINTS,
    identity: frozenset[str] = numeric.REFERENCE_STRIPPED,
) -> bool:
    """The reference's validity check (``is_valid_expr``): whether the expression, with the functions
    in ``identity`` replaced by their argument (by default those the reference strips: ``ln``, the
    trigonometric and inverse functions, ``tanh``...), has a finite real value at one of the
    reference evaluation points."""
    for v in points:
        values = {name: v + 1e-4 * i for i, name in enumerate(("x", "y", "z", "t", *COEFFICIENTS))}
        try:
            if numeric.is_real_finite(numeric.evaluate_prefix(tokens, values, base=base, identity=identity)):
                return True
        except PrefixError:
            return False
    return False
