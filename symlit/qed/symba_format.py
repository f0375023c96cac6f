"""Read SYMBA/MARTY amplitude and squared-amplitude strings.

An **amplitude** is an infix expression (``+ - * / ^``, parentheses, rationals) over

* ``i`` (the imaginary unit), ``e`` (the coupling), masses ``m_mu``, dot products ``s_12``
  (``s_ij = p_i . p_j``, ``s_ii = p_i^2``) and the propagator regulator ``reg_prop``;
* gamma matrices ``gamma_{+\\INDEX_0,INDEX_1,INDEX_2}``: a Lorentz index (``\\INDEX``, ``+`` marks
  the upper position) and two spinor indices;
* spinors ``mu_{MOMENTUM_0,INDEX_2}(p_1)_u`` (``_u``/``_v``, ``^(*)`` = conjugated: ``u-bar``);
* polarizations ``A_{MOMENTUM_0,+\\INDEX_3}(p_4)^(*)``;
* momenta with a Lorentz index ``p_2_\\INDEX_5``.

A **squared amplitude** uses only the scalar part and is read into SymPy, with ``i`` as
``sympy.I`` and ``e`` as a plain symbol (not Euler's number).

Amplitudes are tokenized directly from the parse tree (their factor order kept), with index names
renumbered by first appearance: Lorentz indices ``LOR_k`` (``^LOR_k`` when upper), spinor indices
``SPIN_k``, field labels ``MOMENTUM_k``, so amplitudes that differ only in dummy-index names
tokenize equally.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import sympy

from symlit.core.notation import NotationError
from symlit.qed.particles import PARTICLES, Species
from symlit.qed.tokens import check_notation, nary, number_tokens


class SymbaFormatError(ValueError):
    """A string that is not a valid SYMBA amplitude or squared amplitude."""


# ---------------------------------------------------------------------------- lexer
_TOKEN_HEAD = r"""
    (?P<ws>\s+)
  | (?P<gamma>gamma_\{(?P<g_up>\+?)\\INDEX_(?P<g_l>\d+),INDEX_(?P<g_a>\d+),INDEX_(?P<g_b>\d+)\})
"""
_TOKEN_TAIL = r"""
  | (?P<mom>p_(?P<mo_p>\d+)_(?P<mo_up>\+?)\\INDEX_(?P<mo_i>\d+))
  | (?P<num>\d+)
  | (?P<sym>[A-Za-z][A-Za-z0-9_]*)
  | (?P<pow>\*\*|\^)
  | (?P<op>[-+*/()])
"""


def token_pattern(fields: str) -> re.Pattern[str]:
    """The amplitude lexer's pattern: whitespace, gamma matrices, then ``fields`` (the external
    fields' alternatives, each starting with ``|``), then momenta, numbers, symbols and operators."""
    return re.compile(_TOKEN_HEAD + fields + _TOKEN_TAIL, re.VERBOSE)


_TOKEN = token_pattern(
    r"""
  | (?P<spinor>(?P<sp_f>[A-Za-z]+)_\{MOMENTUM_(?P<sp_m>\d+),INDEX_(?P<sp_i>\d+)\}\(p_(?P<sp_p>\d+)\)
        _(?P<sp_k>[uv])(?P<sp_c>\^\(\*\))?)
  | (?P<pol>(?P<po_f>[A-Za-z]+)_\{MOMENTUM_(?P<po_m>\d+),(?P<po_up>\+?)\\INDEX_(?P<po_i>\d+)\}\(p_(?P<po_p>\d+)\)
        (?P<po_c>\^\(\*\))?)
"""
)

# AST nodes are tuples: ("num", Fraction) ("sym", name) ("I",) ("add", [..]) ("mul", [..])
# ("pow", base, exp) ("gamma", up, lor, s1, s2) ("spinor", particle, label, sidx, p, kind, conj)
# ("pol", particle, label, up, lor, p, conj) ("mom", p, up, lor)
Node = tuple


def _field(g: dict[str, Any]) -> Node:
    """The node of a QED field token (spinor or polarisation) from its match groups."""
    if g["spinor"] is not None:
        return ("spinor", g["sp_f"], int(g["sp_m"]), int(g["sp_i"]), int(g["sp_p"]), g["sp_k"], bool(g["sp_c"]))
    return ("pol", g["po_f"], int(g["po_m"]), bool(g["po_up"]), int(g["po_i"]), int(g["po_p"]), bool(g["po_c"]))


def lex(
    text: str, pattern: re.Pattern[str] = _TOKEN, field: Callable[[dict[str, Any]], Node] = _field
) -> list[tuple[str, Any]]:
    """``("atom", node)`` and ``("op", text)`` tokens of an amplitude. ``pattern`` has the groups
    ``ws gamma mom num sym pow op`` and field groups that ``field`` turns into nodes (QCD adds
    colour: :mod:`symlit.qcd.symba_text`)."""
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m:
            raise SymbaFormatError(f"cannot read {text[pos : pos + 30]!r} at character {pos}")
        pos = m.end()
        g = m.groupdict()
        if g["ws"] is not None:
            continue
        if g["pow"] is not None or g["op"] is not None:
            out.append(("op", "^" if g["pow"] is not None else m.group(0)))
        elif g["gamma"] is not None:
            out.append(("atom", ("gamma", bool(g["g_up"]), int(g["g_l"]), int(g["g_a"]), int(g["g_b"]))))
        elif g["mom"] is not None:
            out.append(("atom", ("mom", int(g["mo_p"]), bool(g["mo_up"]), int(g["mo_i"]))))
        elif g["num"] is not None:
            out.append(("atom", ("num", Fraction(int(g["num"])))))
        elif g["sym"] is not None:
            out.append(("atom", ("I",) if g["sym"] == "i" else ("sym", g["sym"])))
        else:
            out.append(("atom", field(g)))
    return out


# ---------------------------------------------------------------------------- AST helpers
def _num(node: Node) -> Fraction | None:
    return node[1] if node[0] == "num" else None


def _mul(factors: list[Node]) -> Node:
    """A flattened product with its numeric factors folded into one leading rational."""
    coeff, rest = Fraction(1), []
    for f in factors:
        if f[0] == "mul":
            sub = f[1]
        else:
            sub = [f]
        for x in sub:
            if x[0] == "num":
                coeff *= x[1]
            else:
                rest.append(x)
    if coeff == 0:
        return ("num", Fraction(0))
    if not rest:
        return ("num", coeff)
    if coeff != 1:
        rest.insert(0, ("num", coeff))
    return rest[0] if len(rest) == 1 else ("mul", rest)


def _add(terms: list[Node]) -> Node:
    flat: list[Node] = []
    for t in terms:
        flat.extend(t[1] if t[0] == "add" else [t])
    return flat[0] if len(flat) == 1 else ("add", flat)


def _pow(base: Node, exp: Node) -> Node:
    b, e = _num(base), _num(exp)
    if b is not None and e is not None and e.denominator == 1 and (b != 0 or e >= 0):
        return ("num", b ** int(e))
    return ("pow", base, exp)


class Parser:
    """Recursive-descent parser of the SYMBA amplitude grammar, over the tokens ``lexer`` reads from
    ``text`` (QED's :func:`lex` by default; QCD passes its own, :mod:`symlit.qcd.symba_text`)."""

    def __init__(self, text: str, lexer: Callable[[str], list[tuple[str, Any]]] | None = None) -> None:
        self.text = text
        self.toks = (lexer or lex)(text)
        self.pos = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def next(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise SymbaFormatError("expression ends early")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if not self.toks:
            raise SymbaFormatError("empty expression")
        node = self.expr()
        if self.peek() is not None:
            raise SymbaFormatError(f"unexpected {self.peek()[1]!r} after a complete expression (token {self.pos})")
        return node

    def expr(self) -> Node:
        terms = [self.term()]
        while (tok := self.peek()) in (("op", "+"), ("op", "-")):
            self.pos += 1
            t = self.term()
            terms.append(t if tok[1] == "+" else _mul([("num", Fraction(-1)), t]))
        return _add(terms)

    def term(self) -> Node:
        factors = [self.unary()]
        while (tok := self.peek()) in (("op", "*"), ("op", "/")):
            self.pos += 1
            f = self.unary()
            if tok[1] == "/":
                n = _num(f)
                if n == 0:
                    raise SymbaFormatError("division by zero")
                f = ("num", 1 / n) if n is not None else ("pow", f, ("num", Fraction(-1)))
            factors.append(f)
        return _mul(factors)

    def unary(self) -> Node:
        tok = self.peek()
        if tok == ("op", "-"):
            self.pos += 1
            return _mul([("num", Fraction(-1)), self.unary()])
        if tok == ("op", "+"):
            self.pos += 1
            return self.unary()
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if self.peek() == ("op", "^"):
            self.pos += 1
            return _pow(base, self.unary())
        return base

    def atom(self) -> Node:
        kind, value = self.next()
        if kind == "atom":
            return value
        if value == "(":
            node = self.expr()
            if self.next() != ("op", ")"):
                raise SymbaFormatError("missing ')'")
            return node
        raise SymbaFormatError(f"unexpected {value!r} at token {self.pos - 1}")


def parse(text: str) -> Node:
    """The parse tree of an amplitude or squared amplitude (raises :class:`SymbaFormatError`)."""
    return Parser(text).parse()


# ---------------------------------------------------------------------------- squared amplitudes
def to_sympy(node: Node) -> sympy.Expr:
    """A scalar parse tree as SymPy (``i`` -> ``I``); amplitude factors are an error."""
    kind = node[0]
    if kind == "num":
        return sympy.Rational(node[1].numerator, node[1].denominator)
    if kind == "I":
        return sympy.I
    if kind == "sym":
        return sympy.Symbol(node[1])
    if kind == "add":
        return sympy.Add(*(to_sympy(a) for a in node[1]))
    if kind == "mul":
        return sympy.Mul(*(to_sympy(a) for a in node[1]))
    if kind == "pow":
        return sympy.Pow(to_sympy(node[1]), to_sympy(node[2]))
    raise SymbaFormatError(f"a squared amplitude cannot contain the amplitude factor {kind!r}")


def parse_sqamp(text: str) -> sympy.Expr:
    """A SYMBA squared amplitude as a SymPy expression."""
    return to_sympy(parse(text))


def sqamp_text(expr: sympy.Expr) -> str:
    """SYMBA-style text of a squared amplitude (``^`` powers, ``i`` for the imaginary unit)."""
    text = sympy.sstr(expr, order="none").replace("**", "^")
    return re.sub(r"\bI\b", "i", text)


# ---------------------------------------------------------------------------- amplitudes
@dataclass(frozen=True)
class Leg:
    """An external particle of an amplitude: its species, momentum label ``p`` and direction."""

    species: Species
    p: int
    incoming: bool

    def __str__(self) -> str:
        return f"{self.species}(p_{self.p})"


def _spinor_leg(particle: str, p: int, kind: str, conj: bool, species: Callable[..., Any] = Species) -> Leg:
    # u: incoming particle, u^(*) (u-bar): outgoing particle, v: outgoing antiparticle,
    # v^(*) (v-bar): incoming antiparticle
    anti = kind == "v"
    incoming = (kind == "u") != conj
    return Leg(species(particle, anti), p, incoming)


def nodes(node: Node) -> Iterator[Node]:
    """Every node of a parse tree, the node itself first, then its operands' nodes in order."""
    yield node
    if node[0] in ("add", "mul"):
        for a in node[1]:
            yield from nodes(a)
    elif node[0] == "pow":
        yield from nodes(node[1])
        yield from nodes(node[2])


def legs(node: Node) -> list[Leg]:
    """The external legs of an amplitude parse tree, sorted by momentum label."""
    found: dict[int, Leg] = {}
    for n in nodes(node):
        if n[0] == "spinor":
            _, f, _, _, p, kind, conj = n
            leg = _spinor_leg(f, p, kind, conj)
        elif n[0] == "pol":
            _, f, _, _, _, p, conj = n
            leg = Leg(Species(f), p, not conj)
        else:
            continue
        if found.setdefault(p, leg) != leg:
            raise SymbaFormatError(f"momentum p_{p} is given to two different external fields")
    for leg in found.values():
        if leg.species.name not in PARTICLES:
            raise SymbaFormatError(f"unknown particle {leg.species.name!r}")
    return [found[p] for p in sorted(found)]


def process_name(legs_: list[Leg]) -> str:
    """``"e e~ -> mu mu~"``: incoming then outgoing species, each in momentum order."""
    ins = " ".join(str(l.species) for l in legs_ if l.incoming)
    outs = " ".join(str(l.species) for l in legs_ if not l.incoming)
    return f"{ins} -> {outs}"


class TokenEncoder:
    """Tokens of an amplitude parse tree, dummy names (``LOR_k``, ``SPIN_k``, ``MOMENTUM_k``)
    renumbered by first appearance. Subclasses add node kinds in :meth:`field` and their dummy
    name kinds in :attr:`PREFIXES` (QCD: colour, :mod:`symlit.qcd.symba_text`)."""

    PREFIXES: ClassVar[dict[str, str]] = {"lor": "LOR_", "spin": "SPIN_", "field": "MOMENTUM_"}

    def __init__(self, notation: str = "hybrid") -> None:
        check_notation(notation)
        self.notation, self.short = notation, notation == "hybrid_short"
        self.names: dict[tuple[str, int], str] = {}
        self.counters = {kind: itertools.count() for kind in self.PREFIXES}

    def rename(self, kind: str, idx: int) -> str:
        if (kind, idx) not in self.names:
            self.names[(kind, idx)] = self.PREFIXES[kind] + str(next(self.counters[kind]))
        return self.names[(kind, idx)]

    def lor(self, up: bool, idx: int) -> str:
        return ("^" if up else "") + self.rename("lor", idx)

    def encode(self, n: Node) -> list[str]:
        kind = n[0]
        if kind == "num":
            return number_tokens(n[1])
        if kind == "I":
            return ["I"]
        if kind == "sym":
            return [n[1]]
        if kind in ("add", "mul"):
            return nary(kind, [self.encode(a) for a in n[1]], self.notation)
        if kind == "pow":
            base, exponent = n[1], n[2]
            if (
                self.short
                and base[0] == "sym"
                and base[1].startswith("m_")
                and exponent[0] == "num"
                and exponent[1].denominator == 1
                and exponent[1] >= 2
            ):
                return [f"m{exponent[1].numerator}{base[1][2:]}"]
            return ["pow", *self.encode(base), *self.encode(exponent)]
        if kind == "gamma":
            _, up, l_idx, a, b = n
            return ["gamma", self.lor(up, l_idx), self.rename("spin", a), self.rename("spin", b)]
        if kind == "mom":
            _, p, up, l_idx = n
            return ["mom", f"p_{p}", self.lor(up, l_idx)]
        return self.field(n)

    def field(self, n: Node) -> list[str]:
        """External fields (spinors, polarisations) and any kind the base grammar lacks."""
        kind = n[0]
        if kind == "spinor":
            _, f, label, sidx, p, sk, conj = n
            head = f"spinor_{sk}{'bar' if conj else ''}"
            return [head, f, self.rename("field", label), self.rename("spin", sidx), f"p_{p}"]
        if kind == "pol":
            _, f, label, up, l_idx, p, conj = n
            return ["pol_conj" if conj else "pol", f, self.rename("field", label), self.lor(up, l_idx), f"p_{p}"]
        raise SymbaFormatError(f"unknown node {kind!r}")


def amplitude_tokens(node: Node, notation: str = "hybrid") -> list[str]:
    """Tokens of an amplitude parse tree with dummy names renumbered by first appearance."""
    return TokenEncoder(notation).encode(node)


_SPINOR_HEADS = {
    "spinor_u": ("u", False),
    "spinor_ubar": ("u", True),
    "spinor_v": ("v", False),
    "spinor_vbar": ("v", True),
}


def legs_from_tokens(
    tokens: list[str] | str, species: Callable[..., Any] = Species, offset: Callable[[str, str], int] = lambda h, n: 4
) -> list[Leg]:
    """The external legs named in an amplitude's token sequence (see :func:`amplitude_tokens`).

    ``offset(head, particle)``: where the momentum ``p_k`` stands after a field's head token (4 in
    QED; QCD fields carry a colour index too); ``species``: the particle table's ``Species``."""
    toks = tokens.split() if isinstance(tokens, str) else tokens
    found: dict[int, Leg] = {}
    for i, tok in enumerate(toks):
        if tok in _SPINOR_HEADS or tok in ("pol", "pol_conj"):
            at = i + offset(tok, toks[i + 1]) if i + 1 < len(toks) else len(toks)
            if at >= len(toks) or not toks[at].startswith("p_"):
                raise NotationError(f"malformed {tok} at token {i}")
            name, p = toks[i + 1], int(toks[at][2:])
            if tok in _SPINOR_HEADS:
                kind, conj = _SPINOR_HEADS[tok]
                leg = _spinor_leg(name, p, kind, conj, species)
            else:
                leg = Leg(species(name), p, tok == "pol")
            found[p] = leg
    return [found[p] for p in sorted(found)]


def parse_tokens(tokens: list[str] | str) -> Node:
    """The parse tree of an amplitude's token sequence (:func:`amplitude_tokens`, any notation;
    scalar tokens become ``("sym", token)``, so ``m2mu`` stays one symbol): the inverse of the
    tokenization up to the names of dummy indices, enough to read the diagram back."""
    toks = tokens.split() if isinstance(tokens, str) else list(tokens)
    pos = 0

    def take(n: int = 1) -> list[str]:
        nonlocal pos
        if pos + n > len(toks):
            raise NotationError(f"amplitude tokens end early: {' '.join(toks[-5:])!r}")
        pos += n
        return toks[pos - n : pos]

    def lorentz(tok: str) -> tuple[bool, str]:
        return (True, tok[1:]) if tok.startswith("^") else (False, tok)

    def node() -> Node:
        nonlocal pos
        (tok,) = take()
        if tok in ("add(", "mul("):
            args = []
            while pos < len(toks) and toks[pos] != ")":
                args.append(node())
            take()
            return ("add" if tok == "add(" else "mul", args)
        if tok in ("add", "mul"):
            return (tok, [node(), node()])
        if tok == "pow":
            return ("pow", node(), node())
        if tok in ("INT+", "INT-"):
            start = pos
            while pos < len(toks) and toks[pos].isdigit():
                pos += 1
            if pos == start:
                raise NotationError(f"{tok} without digits at token {start}")
            return ("num", Fraction(int("".join(toks[start:pos])) * (-1 if tok == "INT-" else 1)))
        if tok == "RAT":
            p, q = node(), node()
            return ("num", p[1] / q[1])
        if tok == "I":
            return ("I",)
        if tok == "gamma":
            lor, a, b = take(3)
            return ("gamma", *lorentz(lor), a, b)
        if tok in _SPINOR_HEADS:
            f, label, sidx, p = take(4)
            kind, conj = _SPINOR_HEADS[tok]
            return ("spinor", f, label, sidx, int(p[2:]), kind, conj)
        if tok in ("pol", "pol_conj"):
            f, label, lor, p = take(4)
            return ("pol", f, label, *lorentz(lor), int(p[2:]), tok == "pol_conj")
        if tok == "mom":
            p, lor = take(2)
            return ("mom", int(p[2:]), *lorentz(lor))
        return ("sym", tok)

    try:
        out = node()
    except (ValueError, IndexError) as err:
        raise NotationError(f"cannot read amplitude tokens: {err}") from None
    if pos != len(toks):
        raise NotationError(f"{len(toks) - pos} amplitude tokens left over")
    return out


def read_symba_file(path: str) -> list[tuple[str, str]]:
    """``(amp, sqamp)`` string pairs of a SYMBA file (see :func:`read_symba_rows`)."""
    return [(amp, sqamp) for _, amp, sqamp in read_symba_rows(path)]


def read_symba_rows(path: str) -> list[tuple[int, str, str]]:
    """``(line, amp, sqamp)`` of every pair in a SYMBA file: a CSV with ``amp,sqamp`` columns or a
    text file with one ``amp<sep>sqamp`` pair per line (``<sep>`` a tab, or `` > `` as in SYMBA's
    exported text files); ``line`` is the 1-based line of the file where the pair ends."""
    import csv

    rows: list[tuple[int, str, str]] = []
    with open(path, newline="") as f:
        if path.endswith(".csv"):
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise SymbaFormatError(f"{path}: empty file")
            cols = [h.strip() for h in header]
            if "amp" not in cols or "sqamp" not in cols:
                raise SymbaFormatError(f"{path}: the header {header} lacks the columns 'amp' and 'sqamp'")
            ia, isq = cols.index("amp"), cols.index("sqamp")
            for row in reader:
                if not row:
                    continue
                if len(row) <= max(ia, isq):
                    raise SymbaFormatError(f"{path}:{reader.line_num}: expected {len(cols)} columns, got {len(row)}")
                rows.append((reader.line_num, row[ia], row[isq]))
        else:
            for line_no, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                parts = line.split("\t") if "\t" in line else line.split(" > ")
                if len(parts) != 2:
                    raise SymbaFormatError(f"{path}:{line_no}: expected 'amp<TAB>sqamp' or 'amp > sqamp'")
                rows.append((line_no, parts[0], parts[1]))
    return rows


def relabel_momenta(text: str, perm: dict[int, int]) -> str:
    """An amplitude or squared amplitude with momentum label ``i`` renamed ``perm[i]`` (``p_i``,
    and ``s_ij`` written with its labels in order): the same diagram, other labels."""
    text = re.sub(r"s_(\d)(\d)", lambda m: "s_{}{}".format(*sorted((perm[int(m[1])], perm[int(m[2])]))), text)
    return re.sub(r"p_(\d)", lambda m: f"p_{perm[int(m[1])]}", text)


def unknown_symbols(node: Node, n_legs: int) -> list[str]:
    """Scalar symbols of a parse tree that SYMBA's QED data cannot contain: anything but ``e``,
    ``reg_prop``, a fermion mass ``m_<name>`` and ``s_ij`` with ``1 <= i <= j <= n_legs``
    (``nan``, ``hello``...)."""
    return sorted({n[1] for n in nodes(node) if n[0] == "sym" and not _known_symbol(n[1], n_legs)})


def _known_symbol(name: str, n_legs: int) -> bool:
    if name in ("e", "reg_prop"):
        return True
    if name.startswith("m_"):
        return name[2:] in PARTICLES and PARTICLES[name[2:]].fermion
    m = re.fullmatch(r"s_(\d)(\d)", name)
    return bool(m) and 1 <= int(m.group(1)) <= int(m.group(2)) <= n_legs
