"""SymPy expressions <-> prefix token sequences, in the Lample & Charton notation.

Pure functions shared by the generators, the verifiers and the reference-format reader.

* Operators are written before their arguments: ``x + 2*y`` -> ``add x mul INT+ 2 y``. SymPy's
  n-ary ``Add``/``Mul`` become right-nested binary chains (``add a add b c``), ``x**(1/2)`` is
  ``sqrt x``, other powers are ``pow base exponent``.
* Integers are a sign token and digits: ``INT+ 1 2`` (base ``base``, 2..15, most significant digit
  first, see :mod:`symlit.core.notation`); a rational is ``div INT- 3 INT+ 4``.
* Leaves: variables ``x y z t``, coefficients ``a0``..``a9``, constants ``pi E I``, and the unknown
  function of an ODE, ``Y`` (``f(x)``), ``Y'`` and ``Y''`` (its first and second derivatives).
  ``clean=False`` writes them in the uncleaned form ``f x``, ``derivative f x x``.

Decoding a malformed sequence (unknown token, missing or extra arguments, bad digits, a number too
large to evaluate safely) raises :class:`PrefixError`, never anything else, so an evaluation
loop can count it as a wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp

from symlit.core.notation import DIGIT_SYMBOLS, NotationError, decode_int, encode_int

# ---------------------------------------------------------------------------- the vocabulary
UNARY_FUNCTIONS: dict[str, type] = {
    "exp": sp.exp,
    "ln": sp.log,
    "abs": sp.Abs,
    "sign": sp.sign,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "cot": sp.cot,
    "sec": sp.sec,
    "csc": sp.csc,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "acot": sp.acot,
    "asec": sp.asec,
    "acsc": sp.acsc,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "coth": sp.coth,
    "sech": sp.sech,
    "csch": sp.csch,
    "asinh": sp.asinh,
    "acosh": sp.acosh,
    "atanh": sp.atanh,
    "acoth": sp.acoth,
    "asech": sp.asech,
    "acsch": sp.acsch,
}
"""Unary operators that are SymPy function classes, by token."""

POWER_OPERATORS = {"sqrt": sp.Rational(1, 2), "inv": -1, "pow2": 2, "pow3": 3, "pow4": 4, "pow5": 5}
"""Unary operators written as a power with a fixed exponent."""

BINARY_OPERATORS = ("add", "sub", "mul", "div", "pow", "rac", "derivative")
OPERATORS: dict[str, int] = {
    **{op: 2 for op in BINARY_OPERATORS},
    **{op: 1 for op in POWER_OPERATORS},
    **{op: 1 for op in UNARY_FUNCTIONS},
    "f": 1,
}
"""Every operator token with its arity (the reference project's list)."""

VARIABLES = ("x", "y", "z", "t")
COEFFICIENTS = tuple(f"a{i}" for i in range(10))
CONSTANTS = ("pi", "E", "I")
FUNCTION_TOKENS = ("Y", "Y'", "Y''")
INT_TOKENS = ("INT+", "INT-")
MAX_BASE = 15  # digits are single characters 0-9a-e; "f" is the function token of the uncleaned form
MAX_INT_DIGITS = 10_000
MAX_POWER_BITS = 1 << 20  # largest numeric power built when decoding (about 300,000 digits)

SYMBOLS: dict[str, sp.Symbol] = {
    **{v: sp.Symbol(v, real=True, nonzero=True) for v in VARIABLES},
    **{a: sp.Symbol(a, real=True) for a in COEFFICIENTS},
}
"""The SymPy symbols of the notation (the reference assumptions: variables real and non-zero)."""
X = SYMBOLS["x"]
F = sp.Function("f", real=True, nonzero=True)
FX = F(X)
DFX = sp.Derivative(FX, X)
D2FX = sp.Derivative(FX, (X, 2))
CONSTANT_VALUES = {"pi": sp.pi, "E": sp.E, "I": sp.I}
FUNCTION_VALUES = {"Y": FX, "Y'": DFX, "Y''": D2FX}

_SYMPY_TO_TOKEN = {cls: tok for tok, cls in UNARY_FUNCTIONS.items()}
_TOKEN_OF_SYMBOL = {sym: name for name, sym in SYMBOLS.items()}


class PrefixError(ValueError):
    """A token sequence that is not a valid prefix expression (the message says where)."""


class UnsupportedExpression(ValueError):
    """A SymPy expression with no prefix form (special functions, floats, infinities, ...)."""


def check_base(base: int) -> None:
    """Raise ``ValueError`` naming the field when the integer base is not supported."""
    if not 2 <= int(base) <= MAX_BASE:
        raise ValueError(f"data.task.int_base={base} must be between 2 and {MAX_BASE}")


def vocabulary(base: int = 10) -> list[str]:
    """Every token a calculus expression can use (operators, leaves, integer signs and digits)."""
    check_base(base)
    return [*OPERATORS, *VARIABLES, *COEFFICIENTS, *CONSTANTS, *FUNCTION_TOKENS, *INT_TOKENS, *DIGIT_SYMBOLS[:base]]


# ---------------------------------------------------------------------------- SymPy -> prefix
def _integer(value: int, base: int) -> list[str]:
    return encode_int(int(value), "digits", base)


def _to_prefix(expr: sp.Basic, base: int, out: list[str]) -> None:
    if expr.is_Symbol:
        name = _TOKEN_OF_SYMBOL.get(expr)
        if name is None:
            raise UnsupportedExpression(f"unknown symbol {expr} (allowed: {', '.join(SYMBOLS)})")
        out.append(name)
    elif expr.is_Integer:
        out.extend(_integer(expr.p, base))
    elif expr.is_Rational:
        out.append("div")
        out.extend(_integer(expr.p, base))
        out.extend(_integer(expr.q, base))
    elif expr is sp.pi:
        out.append("pi")
    elif expr is sp.E:
        out.append("E")
    elif expr is sp.I:
        out.append("I")
    elif expr.is_Add or expr.is_Mul:
        op = "add" if expr.is_Add else "mul"
        args = expr.args
        for i, arg in enumerate(args):
            if i < len(args) - 1:
                out.append(op)
            _to_prefix(arg, base, out)
    elif expr.is_Pow:
        b, e = expr.args
        if e == sp.S.Half:
            out.append("sqrt")
            _to_prefix(b, base, out)
        else:
            out.append("pow")
            _to_prefix(b, base, out)
            _to_prefix(e, base, out)
    elif type(expr) in _SYMPY_TO_TOKEN:
        out.append(_SYMPY_TO_TOKEN[type(expr)])
        _to_prefix(expr.args[0], base, out)
    elif expr == FX:
        out.extend(("f", "x"))
    elif isinstance(expr, sp.Derivative):
        inner, *counts = expr.args
        order = 0
        for var, n in counts:
            if var != X:
                raise UnsupportedExpression(f"derivative with respect to {var}: only x is supported")
            order += int(n)
        out.extend(["derivative"] * order)
        _to_prefix(inner, base, out)
        out.extend(["x"] * order)
    else:
        raise UnsupportedExpression(f"no prefix form for {type(expr).__name__}: {expr}")


def clean_tokens(tokens: Sequence[str]) -> list[str]:
    """``f x`` -> ``Y``, ``derivative Y x`` -> ``Y'``, ``derivative Y' x`` -> ``Y''`` (reference cleaning)."""
    text = " ".join(tokens)
    text = text.replace("f x", "Y").replace("derivative Y x", "Y'").replace("derivative Y' x", "Y''")
    return text.split()


def sympy_to_prefix(expr: sp.Basic, base: int = 10, clean: bool = True) -> list[str]:
    """Prefix tokens of ``expr``; raises :class:`UnsupportedExpression` for what has no prefix form."""
    check_base(base)
    out: list[str] = []
    _to_prefix(sp.sympify(expr), base, out)
    return clean_tokens(out) if clean else out


# ---------------------------------------------------------------------------- prefix -> SymPy
def _safe_pow(b: sp.Expr, e: sp.Expr, evaluate: bool = True) -> sp.Expr:
    """``b**e``, refusing numeric powers whose evaluation could exhaust memory (a single big-integer
    operation that no time limit can interrupt)."""
    if not evaluate:
        return sp.Pow(b, e, evaluate=False)
    if b.is_Rational and e.is_Rational and b not in (sp.S.Zero, sp.S.One, sp.S.NegativeOne):
        bits = max(abs(b.p), b.q).bit_length()
        if bits * abs(e.p) > MAX_POWER_BITS:
            raise PrefixError(f"numeric power {b}**{e} is too large to evaluate")
    if b.is_zero and e.is_negative:
        raise PrefixError("division by zero")
    return sp.Pow(b, e)


def _flat(cls: type, args: list[sp.Expr]) -> list[sp.Expr]:
    """Arguments of a chain ``add a add b c`` as one list (for unevaluated n-ary Add/Mul)."""
    out: list[sp.Expr] = []
    for a in args:
        out.extend(a.args if isinstance(a, cls) else (a,))
    return out


def _apply(op: str, args: list[sp.Expr], evaluate: bool = True) -> sp.Expr:
    kw = {} if evaluate else {"evaluate": False}
    if op == "add":
        return sp.Add(*args) if evaluate else sp.Add(*_flat(sp.Add, args), **kw)
    if op == "sub":
        return sp.Add(args[0], sp.Mul(sp.S.NegativeOne, args[1], **kw), **kw)
    if op == "mul":
        return sp.Mul(*args) if evaluate else sp.Mul(*_flat(sp.Mul, args), **kw)
    if op == "div":
        if args[1].is_zero:
            raise PrefixError("division by zero")
        if args[0].is_Integer and args[1].is_Integer:
            return sp.Rational(args[0], args[1])
        return sp.Mul(args[0], _safe_pow(args[1], sp.S.NegativeOne, evaluate), **kw)
    if op == "pow":
        return _safe_pow(args[0], args[1], evaluate)
    if op == "rac":
        if args[1].is_zero:
            raise PrefixError("zeroth root")
        return _safe_pow(args[0], sp.Pow(args[1], sp.S.NegativeOne), evaluate)
    if op in POWER_OPERATORS:
        return _safe_pow(args[0], sp.sympify(POWER_OPERATORS[op]), evaluate)
    if op == "derivative":
        if not args[1].is_Symbol:
            raise PrefixError(f"derivative with respect to {args[1]}, which is not a variable")
        return sp.Derivative(args[0], args[1])
    if op == "f":
        return F(args[0])
    return UNARY_FUNCTIONS[op](args[0], **kw)


def _read_integer(tokens: Sequence[str], pos: int, base: int) -> tuple[sp.Integer, int]:
    """The integer starting at ``tokens[pos]`` (a sign token) and the position after it."""
    end = pos + 1
    while end < len(tokens) and len(tokens[end]) == 1 and tokens[end] in DIGIT_SYMBOLS[:base]:
        end += 1
    if end == pos + 1:
        raise PrefixError(f"integer without digits at token {pos} ({tokens[pos]!r})")
    if end - pos - 1 > MAX_INT_DIGITS:
        raise PrefixError(f"integer of more than {MAX_INT_DIGITS} digits at token {pos}")
    try:
        return sp.Integer(decode_int(tokens[pos:end], "digits", base)), end
    except NotationError as err:  # pragma: no cover - digits were checked above
        raise PrefixError(str(err)) from None


def prefix_to_sympy(tokens: Sequence[str] | str, base: int = 10, evaluate: bool = True) -> sp.Expr:
    """The SymPy expression of a prefix token sequence (a list or a whitespace-separated string).

    Raises :class:`PrefixError` for anything that is not exactly one well-formed expression.
    Iterative (no recursion limit on deep expressions). With ``evaluate=False`` the tree is built
    exactly as written (chains ``add a add b c`` flattened), so ``prefix_to_sympy(sympy_to_prefix(e),
    evaluate=False) == e`` for every expression ``e``; with the default ``evaluate=True`` SymPy
    re-evaluates each node, which on rare inputs applies a further automatic simplification
    (e.g. ``Abs(x**-4) -> x**-4`` for a real ``x``): same value, other tree.
    """
    check_base(base)
    if isinstance(tokens, str):
        tokens = tokens.split()
    tokens = list(tokens)
    if not tokens:
        raise PrefixError("empty token sequence")
    # stack of [operator, arity, collected arguments]
    stack: list[tuple[str, int, list[sp.Expr]]] = []
    pos, result = 0, None
    try:
        while pos < len(tokens):
            tok = tokens[pos]
            if tok in OPERATORS:
                stack.append((tok, OPERATORS[tok], []))
                pos += 1
                continue
            if tok in SYMBOLS:
                value, pos = SYMBOLS[tok], pos + 1
            elif tok in INT_TOKENS:
                value, pos = _read_integer(tokens, pos, base)
            elif tok in CONSTANT_VALUES:
                value, pos = CONSTANT_VALUES[tok], pos + 1
            elif tok in FUNCTION_VALUES:
                value, pos = FUNCTION_VALUES[tok], pos + 1
            else:
                raise PrefixError(f"unknown token {tok!r} at position {pos}")
            while True:  # hand the finished value to its operator, closing completed operators
                if not stack:
                    if pos != len(tokens):
                        raise PrefixError(
                            f"{len(tokens) - pos} unused token(s) after a complete expression, from position {pos}"
                        )
                    result = value
                    break
                op, arity, args = stack[-1]
                args.append(value)
                if len(args) < arity:
                    break
                stack.pop()
                value = _apply(op, args, evaluate)
            if result is not None:
                break
    except PrefixError:
        raise
    except (RecursionError, MemoryError, OverflowError) as err:
        raise PrefixError(f"expression too large to build: {type(err).__name__}") from None
    except Exception as err:  # noqa: BLE001 - SymPy rejected a combination (e.g. a bad function argument)
        raise PrefixError(f"SymPy could not build the expression: {type(err).__name__}: {err}") from None
    if result is None:
        op, arity, args = stack[-1]
        raise PrefixError(f"incomplete expression: operator {op!r} has {len(args)} of {arity} argument(s)")
    return result


def check_prefix(tokens: Sequence[str] | str, base: int = 10) -> None:
    """Raise :class:`PrefixError` unless ``tokens`` is exactly one well-formed prefix expression of
    known tokens. Structural only (no SymPy): cheap enough for every line of a large file."""
    if isinstance(tokens, str):
        tokens = tokens.split()
    digits = DIGIT_SYMBOLS[:base]
    needed = 1  # expressions still to read
    pos = 0
    while pos < len(tokens):
        tok = tokens[pos]
        if needed == 0:
            raise PrefixError(f"{len(tokens) - pos} unused token(s) after a complete expression, from position {pos}")
        if tok in OPERATORS:
            needed += OPERATORS[tok] - 1
        elif tok in INT_TOKENS:
            end = pos + 1
            while end < len(tokens) and len(tokens[end]) == 1 and tokens[end] in digits:
                end += 1
            if end == pos + 1:
                raise PrefixError(f"integer without digits at position {pos} ({tok!r})")
            pos, needed = end, needed - 1
            continue
        elif tok in SYMBOLS or tok in CONSTANT_VALUES or tok in FUNCTION_VALUES:
            needed -= 1
        else:
            raise PrefixError(f"unknown token {tok!r} at position {pos}")
        pos += 1
    if pos == 0:
        raise PrefixError("empty token sequence")
    if needed:
        raise PrefixError(f"incomplete expression: {needed} operand(s) missing at the end")


def count_operators(tokens: Sequence[str]) -> int:
    """Number of operator tokens in a prefix sequence."""
    return sum(tok in OPERATORS for tok in tokens)


def canonical_prefix(
    tokens: Sequence[str],
    arity: Mapping[str, int],
    commutative: Sequence[str] = (),
    renamable: Sequence[str] = (),
    integers: Sequence[str] = ("INT+", "INT-"),
    digits: Sequence[str] = (),
) -> str:
    """A prefix expression up to reordering the arguments of ``commutative`` operators (nested
    chains flattened) and renaming the ``renamable`` leaves (coefficients) by first appearance.
    ``arity`` maps operator tokens to their argument counts; an integer is a token of
    ``integers`` followed by ``digits``. Raises ``ValueError`` on a malformed sequence."""
    pos = 0

    def node() -> tuple:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError("prefix sequence ends early")
        tok = tokens[pos]
        pos += 1
        if tok in integers:
            start = pos
            while pos < len(tokens) and tokens[pos] in digits:
                pos += 1
            return (tok + "".join(tokens[start:pos]),)
        if tok not in arity:
            return ("?" if tok in renamable else tok, tok)
        args = [node() for _ in range(arity[tok])]
        if tok in commutative:
            flat = [b for a in args for b in (a[1:] if a[0] == tok else [a])]
            return (tok, *sorted(flat, key=lambda a: shape(a)))
        return (tok, *args)

    def shape(n: tuple) -> str:  # the encoding with renamable leaves anonymous: a renaming-free order
        return n[0] if len(n) <= 2 and n[0] not in arity else f"{n[0]}({','.join(shape(a) for a in n[1:])})"

    tree = node()
    if pos != len(tokens):
        raise ValueError(f"{len(tokens) - pos} tokens left over")
    names: dict[str, str] = {}

    def text(n: tuple) -> str:
        if n[0] == "?":
            return names.setdefault(n[1], f"c{len(names)}")
        if len(n) <= 2 and n[0] not in arity:
            return n[0]
        return f"{n[0]}({','.join(text(a) for a in n[1:])})"

    return text(tree)
