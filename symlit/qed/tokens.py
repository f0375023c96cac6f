"""SymPy expressions <-> token sequences: prefix, hybrid prefix and mass-token shortening.

Three notations (``NOTATIONS``):

``prefix``
    Every operator has a fixed arity: ``add a b``, ``mul a b``, ``pow a b``. An n-ary sum is a
    right-nested chain ``add a add b c``.
``hybrid``
    SYMBA's hybrid prefix: n-ary sums and products are written ``add( a b c )`` and
    ``mul( a b c )``; every other operator stays prefix (``pow x INT+ 2``).
``hybrid_short``
    Hybrid prefix plus SYMBA's mass-token shortening: ``m_mu**2`` is one token ``m2mu`` and a
    product ``m_mu**2 * s_12`` inside a product is one token ``m2mu*s_12``.

Integers are ``INT+``/``INT-`` followed by decimal digits, a rational is ``RAT`` with two
integers, the imaginary unit is ``I``, every symbol (``e``, ``m_mu``, ``s_12``, ``reg_prop``) is
one token.

Decoding is exact: :func:`from_tokens` rebuilds every node unevaluated with its arguments in
SymPy's canonical order, so ``from_tokens(to_tokens(x)) == canonical(x)``, and ``canonical(x) ==
x`` for any automatically evaluated expression and for the output of ``sympy.factor``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from functools import cmp_to_key

import sympy
from sympy import Add, Basic, Mul, Pow, Rational, Symbol

from symlit.core.notation import NotationError

NOTATIONS = ("prefix", "hybrid", "hybrid_short")
DIGITS = tuple("0123456789")
OPERATOR_TOKENS = ("add", "mul", "pow", "add(", "mul(", ")", "RAT", "INT+", "INT-", "I")
_MASS_POWER = re.compile(r"^m(\d+)([A-Za-z]+)$")
_MASS_DOT = re.compile(r"^m(\d+)([A-Za-z]+)\*(s_\d+)$")
_MASS_SYMBOL = re.compile(r"^m_([A-Za-z]+)$")
_S_SYMBOL = re.compile(r"^s_\d+$")
_SORT_KEY = cmp_to_key(Basic.compare)


def check_notation(notation: str) -> None:
    """Raise ``ValueError`` naming the config field for an unknown notation."""
    if notation not in NOTATIONS:
        raise ValueError(f"data.task.notation={notation!r} must be one of {NOTATIONS}")


# ---------------------------------------------------------------------------- shared pieces
def int_tokens(value: int) -> list[str]:
    """``-12 -> ["INT-", "1", "2"]``."""
    return ["INT-" if value < 0 else "INT+", *str(abs(value))]


def number_tokens(value: Fraction | int) -> list[str]:
    """An integer, or ``RAT p q`` for a non-integer rational."""
    value = Fraction(value)
    if value.denominator == 1:
        return int_tokens(value.numerator)
    return ["RAT", *int_tokens(value.numerator), *int_tokens(value.denominator)]


def nary(op: str, args: Sequence[list[str]], notation: str) -> list[str]:
    """An n-ary ``add``/``mul`` node: ``op( a b c )`` (hybrid) or a right-nested prefix chain."""
    if len(args) == 1:
        return list(args[0])
    if notation == "prefix":
        out: list[str] = []
        for a in args[:-1]:
            out += [op, *a]
        return out + list(args[-1])
    return [f"{op}(", *(t for a in args for t in a), ")"]


# ---------------------------------------------------------------------------- SymPy -> tokens
def canonical(expr: Basic) -> Basic:
    """``expr`` rebuilt unevaluated with the arguments of every sum and product in canonical order."""
    if isinstance(expr, (Add, Mul)):
        args = sorted((canonical(a) for a in expr.args), key=_SORT_KEY)
        return type(expr)(*args, evaluate=False)
    if isinstance(expr, Pow):
        return Pow(canonical(expr.base), canonical(expr.exp), evaluate=False)
    return expr


def _mass_power(arg: Basic) -> tuple[str, int] | None:
    """``("mu", 2)`` for ``m_mu**2`` (integer power >= 2 of a mass symbol), else ``None``."""
    if isinstance(arg, Pow) and isinstance(arg.base, Symbol) and arg.exp.is_Integer and int(arg.exp) >= 2:
        m = _MASS_SYMBOL.match(arg.base.name)
        if m:
            return m.group(1), int(arg.exp)
    return None


def to_tokens(expr: Basic, notation: str = "hybrid") -> list[str]:
    """Tokens of a SymPy expression in ``notation`` (see the module docstring)."""
    check_notation(notation)
    short = notation == "hybrid_short"

    def enc(x: Basic) -> list[str]:
        if x.is_Integer:
            return int_tokens(int(x))
        if x.is_Rational:
            return ["RAT", *int_tokens(int(x.p)), *int_tokens(int(x.q))]
        if x is sympy.I:
            return ["I"]
        if isinstance(x, Symbol):
            if x.name in OPERATOR_TOKENS or x.name in DIGITS or not x.name or any(c.isspace() for c in x.name):
                raise NotationError(f"symbol name {x.name!r} cannot be a token")
            return [x.name]
        if isinstance(x, Pow):
            if short and (mp := _mass_power(x)):
                return [f"m{mp[1]}{mp[0]}"]
            return ["pow", *enc(x.base), *enc(x.exp)]
        if isinstance(x, Add):
            return nary("add", [enc(a) for a in x.args], notation)
        if isinstance(x, Mul):
            args = list(x.args)
            parts: dict[int, list[str]] = {}
            if short:  # pair mass powers with s_ij in order; the merged token takes the first one's place
                masses = [i for i, a in enumerate(args) if _mass_power(a)]
                dots = [i for i, a in enumerate(args) if isinstance(a, Symbol) and _S_SYMBOL.match(a.name)]
                for i, j in zip(masses, dots):
                    name, n = _mass_power(args[i])  # type: ignore[misc]
                    parts[min(i, j)] = [f"m{n}{name}*{args[j].name}"]
                    parts[max(i, j)] = []
            encoded = [parts[i] if i in parts else enc(a) for i, a in enumerate(args)]
            return nary("mul", [e for e in encoded if e], notation)
        raise NotationError(f"cannot tokenize {type(x).__name__} node {x}")

    return enc(expr)


# ---------------------------------------------------------------------------- tokens -> SymPy
class _Cursor:
    """A read position in a token list, for the recursive readers :func:`from_tokens` and
    :func:`amplitude_text`. ``ends_early`` is the message of the :class:`NotationError` raised
    when a token is taken past the end; ``{tokens}`` in it stands for the tokens joined by spaces."""

    def __init__(self, toks: Sequence[str], ends_early: str) -> None:
        self.toks = toks
        self.pos = 0  # index of the next token
        self.ends_early = ends_early

    def take(self) -> str:
        """The next token; :class:`NotationError` past the end."""
        if self.pos >= len(self.toks):
            raise NotationError(self.ends_early.format(tokens=" ".join(self.toks)))
        self.pos += 1
        return self.toks[self.pos - 1]

    def digits(self) -> str:
        """The run of digit tokens that starts here, joined (``""`` when the next token is no digit)."""
        start = self.pos
        while self.pos < len(self.toks) and self.toks[self.pos] in DIGITS:
            self.pos += 1
        return "".join(self.toks[start : self.pos])

    def before_close(self) -> bool:
        """Whether a token is left and it is not ``)`` (the end of an n-ary ``add(``/``mul(``)."""
        return self.pos < len(self.toks) and self.toks[self.pos] != ")"

    def left(self) -> int:
        """How many tokens are not read yet."""
        return len(self.toks) - self.pos


def from_tokens(tokens: Sequence[str] | str, notation: str = "hybrid") -> Basic:
    """Inverse of :func:`to_tokens`; raises :class:`NotationError` on a malformed sequence."""
    check_notation(notation)
    toks = tokens.split() if isinstance(tokens, str) else list(tokens)
    short = notation == "hybrid_short"
    cursor = _Cursor(toks, "sequence ends early: {tokens!r}")
    take = cursor.take

    def integer(sign: str) -> int:
        start = cursor.pos
        digits = cursor.digits()
        if not digits:
            raise NotationError(f"{sign} without digits at token {start}")
        if len(digits) > 1 and digits[0] == "0":
            raise NotationError(f"integer with a leading zero at token {start}")
        return int(digits) * (-1 if sign == "INT-" else 1)

    def node(kind: type, args: list[Basic]) -> Basic:
        flat: list[Basic] = []
        for a in args:  # merged tokens and prefix chains come back as nested nodes of the same kind
            flat.extend(a.args if isinstance(a, kind) else [a])
        if len(flat) < 2:
            raise NotationError(f"{kind.__name__.lower()} with fewer than two arguments")
        return kind(*sorted(flat, key=_SORT_KEY), evaluate=False)

    def dec() -> Basic:
        tok = take()
        if tok in ("INT+", "INT-"):
            return sympy.Integer(integer(tok))
        if tok == "RAT":
            p_sign, q_sign = take(), None
            if p_sign not in ("INT+", "INT-"):
                raise NotationError("RAT must be followed by two integers")
            p = integer(p_sign)
            q_sign = take()
            if q_sign not in ("INT+", "INT-"):
                raise NotationError("RAT must be followed by two integers")
            q = integer(q_sign)
            if q == 0:
                raise NotationError("RAT with a zero denominator")
            return Rational(p, q)
        if tok == "I":
            return sympy.I
        if tok == "pow":
            base = dec()
            return Pow(base, dec(), evaluate=False)
        if tok in ("add", "mul"):
            a = dec()
            return node(Add if tok == "add" else Mul, [a, dec()])
        if tok in ("add(", "mul("):
            args = []
            while cursor.before_close():
                args.append(dec())
            take()
            return node(Add if tok == "add(" else Mul, args)
        if tok == ")" or tok in DIGITS:
            raise NotationError(f"unexpected {tok!r} at token {cursor.pos - 1}")
        if short and (m := _MASS_DOT.match(tok)):
            mass = Pow(Symbol(f"m_{m.group(2)}"), sympy.Integer(int(m.group(1))), evaluate=False)
            return node(Mul, [mass, Symbol(m.group(3))])
        if short and (m := _MASS_POWER.match(tok)):
            return Pow(Symbol(f"m_{m.group(2)}"), sympy.Integer(int(m.group(1))), evaluate=False)
        return Symbol(tok)

    out = dec()
    if cursor.left():
        raise NotationError(f"{cursor.left()} tokens left over after a complete expression")
    return out


def token_score(target: Sequence[str], hypothesis: Sequence[str]) -> float:
    """SYMBA's token score ``(n_correct - n_extra) / n_true``: position-wise matches minus extra tokens."""
    if not target:
        return 0.0
    correct = sum(a == b for a, b in zip(target, hypothesis))
    extra = max(0, len(hypothesis) - len(target))
    return (correct - extra) / len(target)


# ---------------------------------------------------------------------------- amplitudes for people
SPINOR_NAMES = {"spinor_u": "u", "spinor_ubar": "ubar", "spinor_v": "v", "spinor_vbar": "vbar"}
"""Spinor tokens and how :func:`amplitude_text` writes them."""
AMPLITUDE_HEADS = {"gamma", "pol", "pol_conj", "mom", *SPINOR_NAMES}
"""Tokens that occur in amplitudes and never in squared amplitudes."""


def amplitude_text(toks: list[str]) -> str:
    """Compact infix of amplitude tokens (scalars, gamma matrices, spinors, polarizations, momenta),
    e.g. ``gamma[^LOR_0,SPIN_0,SPIN_1]*ubar_e(p_3)[SPIN_1]*...``; :class:`NotationError` when the
    tokens do not spell an amplitude."""
    cursor = _Cursor(toks, "ends early")
    take = cursor.take

    def integer(sign: str) -> str:
        return ("-" if sign == "INT-" else "") + cursor.digits()

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
            while cursor.before_close():
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
        if tok in SPINOR_NAMES:
            f, _, spin, p = take(), take(), take(), take()
            return f"{SPINOR_NAMES[tok]}_{f}({p})[{spin}]", "atom"
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
    if cursor.left():
        raise NotationError("tokens left over")
    return text
