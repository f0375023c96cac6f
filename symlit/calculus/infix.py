"""Infix text for people <-> SymPy, in the calculus symbols of :mod:`symlit.calculus.prefix`.

Users write ``x*cos(x)`` (an integrand) or ``x*Y' - Y = 0`` (an ODE in ``Y Y' Y''``, also
``y y' y''``), with ``^`` for powers and implicit products; :func:`read` gives the SymPy expression
(an equation as ``left - right``) and :func:`readable` writes ``Y Y' Y''`` back for the unknown
function.
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp

from symlit.calculus.prefix import D2FX, DFX, FX, SYMBOLS

NAMES: dict[str, Any] = {
    **SYMBOLS,
    "pi": sp.pi,
    "E": sp.E,
    "I": sp.I,
    "ln": sp.log,
    "log": sp.log,
    "Y": FX,
    "Yp": DFX,
    "Ypp": D2FX,
}
"""The names a user's text may use."""

READABLE = {D2FX: sp.Symbol("Y''"), DFX: sp.Symbol("Y'"), FX: sp.Symbol("Y")}


def read(text: str) -> sp.Expr:
    """The expression of ``text`` (an equation ``a = b`` as ``a - b``); ``ValueError`` with a
    message for the user."""
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication,
        parse_expr,
        standard_transformations,
    )

    text = text.strip()
    if not text:
        raise ValueError("empty input; type an expression in x such as x*cos(x)")
    if text.count("=") > 1:
        raise ValueError(f"{text!r} has more than one '='")
    sides = [re.sub(r"\b[Yy]''", "Ypp", re.sub(r"\b[Yy]'(?!')", "Yp", side)) for side in text.split("=")]
    sides = [re.sub(r"\by\b", "Y", side) for side in sides]
    try:
        exprs = [
            parse_expr(
                side,
                local_dict=dict(NAMES),
                transformations=(*standard_transformations, implicit_multiplication, convert_xor),
            )
            for side in sides
        ]
    except Exception as err:  # noqa: BLE001 - SymPy's parser raises SyntaxError, TokenError, TypeError...
        raise ValueError(f"cannot read {text!r} as an expression ({type(err).__name__}: {err})") from None
    expr = exprs[0] - exprs[1] if len(exprs) == 2 else exprs[0]
    unknown = sorted(str(s) for s in expr.free_symbols if s not in SYMBOLS.values())
    if unknown:
        raise ValueError(f"unknown symbol(s) {', '.join(unknown)} in {text!r}; use x (and a0..a9, pi, E)")
    return expr


def readable(expr: sp.Expr) -> str:
    """SymPy text of ``expr`` with the unknown function written ``Y Y' Y''``."""
    return sp.sstr(expr.xreplace(READABLE))
