"""Tasks for people: read a user's infix input into source tokens, and show tokens as expressions.

The hooks are :meth:`Task.parse_input`, :meth:`Task.render` and :meth:`Task.reference`
(defaults in :mod:`symlit.tasks.base`). The task-specific versions live here, as small functions,
because the task modules are being rewritten on other branches; once those are merged they move
into the task classes (``arithmetic_*`` into ``ArithmeticTask``, ``calculus_*`` into
``CalculusTask``, ``qed_*`` into the QED tasks) and :func:`parse_input`, :func:`render` and
:func:`reference` shrink to the method calls.

* arithmetic: ``"23 + 15"`` <-> ``INT+ 2 3 + INT+ 1 5``; the reference answer is computed;
* calculus: SymPy's parser and :mod:`symlit.calculus.prefix` (``"x*cos(x)"`` is an integrand,
  ``"x*Y' - Y = 0"`` an ODE in ``Y Y' Y''``); the verifier needs no reference answer;
* QED: SYMBA amplitude text in (:mod:`symlit.qed.symba_format`), squared amplitudes out as SYMBA
  text; amplitudes as compact infix (``gamma[^LOR_0,SPIN_0,SPIN_1]*ubar_e(p_3)[SPIN_1]*...``).
  Without a reference squared amplitude, hypotheses are not verified (beam agreement still is).
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp

from symlit.calculus import prefix as cp
from symlit.core.notation import DIGIT_SYMBOLS, NotationError, decode_int
from symlit.tasks.arithmetic import OPERATORS as ARITHMETIC_OPERATORS
from symlit.tasks.arithmetic import ArithmeticTask
from symlit.tasks.base import Task
from symlit.tasks.calculus import CalculusTask
from symlit.tasks.qed import QEDGeneratedTask, QEDSymbaTask

QED_TASKS = (QEDSymbaTask, QEDGeneratedTask)


# ---------------------------------------------------------------------------- arithmetic
def _arithmetic_problem(task: ArithmeticTask, text: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
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
        if op not in ARITHMETIC_OPERATORS:
            raise ValueError(f"unexpected {op!r} in {text.strip()!r}; expected one of {' '.join(ARITHMETIC_OPERATORS)}")
        if op not in task.operators:
            raise ValueError(f"{op!r} is not an operator of this model's task (trained on {' '.join(task.operators)})")
        operators.append(op)
        pos += 1
    if not operators:
        raise ValueError(f"{text.strip()!r} has no operator; type an expression such as 23 + 15")
    return tuple(operands), tuple(operators)


def arithmetic_parse_input(task: ArithmeticTask, text: str) -> str:
    """Source tokens of an infix expression in the task's encoding."""
    return task.format_problem(_arithmetic_problem(task, text))[0]


def arithmetic_reference(task: ArithmeticTask, source: str) -> str:
    """The target (the exact value) of a source, computed."""
    _, ops = _split_operands(source.split())
    return task.format_problem((tuple(task.operands(source)), tuple(ops)))[1]


def _split_operands(tokens: list[str]) -> tuple[list[list[str]], list[str]]:
    groups: list[list[str]] = [[]]
    ops: list[str] = []
    for token in tokens:
        if token in ARITHMETIC_OPERATORS and groups[-1]:
            groups.append([])
            ops.append(token)
        else:
            groups[-1].append(token)
    return groups, ops


def arithmetic_render(task: ArithmeticTask, tokens: str) -> str:
    """``INT+ 2 3 + INT+ 1 5`` -> ``23 + 15``; tokens that spell no number are shown as they are.

    A problem has at least two operands, so a single number is a result, written in the task's
    result encoding (``reverse_output`` writes results reversed under a plain ``encoding``)."""
    groups, ops = _split_operands(tokens.split())
    try:
        if ops:
            values = [str(v) for v in task.operands(tokens)]
        else:
            values = [str(decode_int(groups[0], task.target_encoding, task.base, task.index_hints))]
    except NotationError:
        return tokens
    out = [values[0]]
    for op, value in zip(ops, values[1:]):
        out += [op, value]
    return " ".join(out)


# ---------------------------------------------------------------------------- calculus
_NAMES: dict[str, Any] = {
    **cp.SYMBOLS,
    "pi": sp.pi,
    "E": sp.E,
    "I": sp.I,
    "ln": sp.log,
    "log": sp.log,
    "Y": cp.FX,
    "Yp": cp.DFX,
    "Ypp": cp.D2FX,
}
_READABLE = {cp.D2FX: sp.Symbol("Y''"), cp.DFX: sp.Symbol("Y'"), cp.FX: sp.Symbol("Y")}


def _read_sympy(text: str) -> sp.Expr:
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
                local_dict=dict(_NAMES),
                transformations=(*standard_transformations, implicit_multiplication, convert_xor),
            )
            for side in sides
        ]
    except Exception as err:  # noqa: BLE001 - SymPy's parser raises SyntaxError, TokenError, TypeError...
        raise ValueError(f"cannot read {text!r} as an expression ({type(err).__name__}: {err})") from None
    expr = exprs[0] - exprs[1] if len(exprs) == 2 else exprs[0]
    unknown = sorted(str(s) for s in expr.free_symbols if s not in cp.SYMBOLS.values())
    if unknown:
        raise ValueError(f"unknown symbol(s) {', '.join(unknown)} in {text!r}; use x (and a0..a9, pi, E)")
    return expr


def calculus_parse_input(task: CalculusTask, text: str) -> str:
    """An integrand (``"x*cos(x)"`` -> ``sub Y' <f>``) or, for ODE tasks, an equation in ``x Y Y' Y''``."""
    expr = _read_sympy(text)
    has_y = expr.has(cp.FX)
    if task.order == 0 and has_y:
        raise ValueError(f"{text.strip()!r}: an integrand is an expression in x, without Y")
    if task.order and not expr.has(cp.DFX):
        raise ValueError(f"{text.strip()!r}: an ODE of order {task.order} needs Y' (e.g. x*Y' - Y = 0)")
    if task.order == 1 and expr.has(cp.D2FX):
        raise ValueError(f"{text.strip()!r}: this model solves first-order ODEs; Y'' is not allowed")
    try:
        tokens = cp.sympy_to_prefix(expr, task.int_base)
    except (cp.UnsupportedExpression, ValueError) as err:
        raise ValueError(f"{text.strip()!r}: {err}") from None
    return " ".join(["sub", "Y'", *tokens] if task.order == 0 else tokens)


def calculus_render(task: CalculusTask, tokens: str) -> str:
    """Prefix tokens as SymPy text (``Y Y' Y''`` for the unknown function); an integration input
    ``sub Y' f`` is shown as its integrand ``f``, an ODE input as ``... = 0``."""
    toks = tokens.split()
    is_integral_input = task.order == 0 and toks[:2] == ["sub", "Y'"]
    try:
        expr = cp.prefix_to_sympy(toks[2:] if is_integral_input else toks, task.int_base, evaluate=False)
    except cp.PrefixError:
        return tokens
    text = sp.sstr(expr.xreplace(_READABLE))
    return text + " = 0" if task.order and expr.has(cp.DFX) else text


# ---------------------------------------------------------------------------- QED
def qed_parse_input(task: Any, text: str) -> str:
    """Source tokens of a SYMBA amplitude (e.g. a line of SYMBA's ``amp`` column)."""
    from symlit.qed import symba_format as sf

    if not text.strip():
        raise ValueError("empty input; paste a SYMBA amplitude such as the 'amp' column of a SYMBA file")
    try:
        tree = sf.parse(text.strip())
        sf.legs(tree)  # checks the particles
        return " ".join(sf.amplitude_tokens(tree, task.notation))
    except (sf.SymbaFormatError, KeyError, ValueError) as err:
        raise ValueError(f"not a SYMBA amplitude: {err}") from None


_SPINOR = {"spinor_u": "u", "spinor_ubar": "ubar", "spinor_v": "v", "spinor_vbar": "vbar"}
_AMPLITUDE_HEADS = {"gamma", "pol", "pol_conj", "mom", *_SPINOR}


def _amplitude_text(toks: list[str]) -> str:
    """Compact infix of amplitude tokens (scalars, gamma matrices, spinors, polarizations, momenta)."""
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise NotationError("ends early")
        pos += 1
        return toks[pos - 1]

    def integer(sign: str) -> str:
        nonlocal pos
        start = pos
        while pos < len(toks) and toks[pos] in DIGIT_SYMBOLS[:10]:
            pos += 1
        return ("-" if sign == "INT-" else "") + "".join(toks[start:pos])

    def wrap(text: str, kind: str) -> str:
        return f"({text})" if kind == "add" or (kind == "num" and text.startswith("-")) else text

    def node() -> tuple[str, str]:  # (text, kind)
        tok = take()
        if tok in ("INT+", "INT-"):
            return integer(tok), "num"
        if tok == "RAT":
            p, q = integer(take()), integer(take())
            return f"{p}/{q}", "num"
        if tok == "I":
            return "i", "atom"
        if tok in ("add(", "mul("):
            args = []
            while pos < len(toks) and toks[pos] != ")":
                args.append(node())
            take()
            return join(tok[:-1], args)
        if tok in ("add", "mul"):
            a = node()
            return join(tok, [a, node()])
        if tok == "pow":
            (b, kb), (e, ke) = node(), node()
            return f"{wrap(b, 'add' if kb != 'atom' else kb)}^{wrap(e, ke if ke != 'mul' else 'add')}", "atom"
        if tok == "gamma":
            return f"gamma[{take()},{take()},{take()}]", "atom"
        if tok in _SPINOR:
            f, _, spin, p = take(), take(), take(), take()
            return f"{_SPINOR[tok]}_{f}({p})[{spin}]", "atom"
        if tok in ("pol", "pol_conj"):
            f, _, lor, p = take(), take(), take(), take()
            return f"eps{'*' if tok == 'pol_conj' else ''}_{f}({p})[{lor}]", "atom"
        if tok == "mom":
            p, lor = take(), take()
            return f"{p}[{lor}]", "atom"
        return tok, "atom"

    def join(op: str, args: list[tuple[str, str]]) -> tuple[str, str]:
        if op == "add":
            return " + ".join(t for t, _ in args).replace("+ -", "- "), "add"
        return "*".join(wrap(t, k) for t, k in args), "mul"

    text, _ = node()
    if pos != len(toks):
        raise NotationError("tokens left over")
    return text


def qed_render(task: Any, tokens: str) -> str:
    """A squared amplitude as SYMBA text; an amplitude as compact infix; else the tokens."""
    from symlit.qed import symba_format as sf
    from symlit.qed.tokens import from_tokens

    toks = tokens.split()
    try:
        if any(t in _AMPLITUDE_HEADS for t in toks):
            return _amplitude_text(toks)
        return sf.sqamp_text(from_tokens(toks, task.notation))
    except (NotationError, ValueError, TypeError):
        return tokens


# ---------------------------------------------------------------------------- dispatch
def parse_input(task: Task, text: str) -> str:
    """:meth:`Task.parse_input` with the task-specific versions of this module."""
    if isinstance(task, ArithmeticTask):
        return arithmetic_parse_input(task, text)
    if isinstance(task, CalculusTask):
        return calculus_parse_input(task, text)
    if isinstance(task, QED_TASKS):
        return qed_parse_input(task, text)
    return task.parse_input(text)


def render(task: Task, tokens: str | None) -> str:
    """:meth:`Task.render` with the task-specific versions of this module (``None``: no EOS)."""
    if tokens is None:
        return "(no end of sequence)"
    if isinstance(task, ArithmeticTask):
        return arithmetic_render(task, tokens)
    if isinstance(task, CalculusTask):
        return calculus_render(task, tokens)
    if isinstance(task, QED_TASKS):
        return qed_render(task, tokens)
    return task.render(tokens)


def reference(task: Task, source: str) -> str | None:
    """:meth:`Task.reference` with the task-specific versions of this module."""
    if isinstance(task, ArithmeticTask):
        return arithmetic_reference(task, source)
    if isinstance(task, CalculusTask):
        return ""  # integrals are checked by differentiation, ODE solutions by substitution
    return task.reference(source)


def embedding_groups(task: Task, vocabulary: list[str]) -> dict[str, list[str]]:
    """The tokens whose embeddings ``symlit-inspect`` draws, by group: digits and numbers for
    arithmetic, operators for calculus, every non-special token otherwise."""
    specials = {t for t in vocabulary if t.startswith("<") and t.endswith(">")}
    if isinstance(task, ArithmeticTask):
        numbers = [
            t for t in vocabulary if re.fullmatch(r"-?\d+", t) or (len(t) == 1 and t in DIGIT_SYMBOLS[: task.base])
        ]
        return {
            "digit / number": sorted(set(numbers), key=lambda t: (len(t), t)),
            "sign / operator": [t for t in vocabulary if t in ("INT+", "INT-", *ARITHMETIC_OPERATORS)],
        }
    if isinstance(task, CalculusTask):
        return {
            "binary operator": [t for t in vocabulary if cp.OPERATORS.get(t) == 2],
            "unary operator": [t for t in vocabulary if cp.OPERATORS.get(t) == 1],
        }
    return {"token": [t for t in vocabulary if t not in specials]}
