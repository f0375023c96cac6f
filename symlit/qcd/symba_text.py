"""SYMBA-style text of QCD amplitudes, its parser, and amplitude tokens.

The text extends the QED format of :mod:`symlit.qed.symba_format` with colour:

* quark spinors carry a colour index: ``u_{MOMENTUM_0,INDEX_1,COL_0}(p_1)_u`` (``_v``, ``^(*)``);
* gluon polarisations an adjoint index: ``G_{MOMENTUM_2,+\\INDEX_0,GLU_0}(p_3)^(*)``; photon
  polarisations are as in QED (``A_{MOMENTUM_3,+\\INDEX_1}(p_4)^(*)``);
* generators ``T_{GLU_0,COL_0,COL_1}`` (``(T^a)_{ij}``), structure constants
  ``f_{GLU_0,GLU_1,GLU_2}``, metrics ``g_{+\\INDEX_0,+\\INDEX_1}``, momenta ``p_1_+\\INDEX_2``;
* scalars ``g_s`` (strong coupling), ``e``, ``i``, masses ``m_u``, ``s_ij``, ``reg_prop``.

Colour indices are numbered by first appearance in the text (``COL_k`` fundamental, ``GLU_k``
adjoint). :func:`amplitude_tokens` renumbers every dummy name (``LOR_k``, ``SPIN_k``,
``MOMENTUM_k``, ``COL_k``, ``GLU_k``) by first appearance again, so texts that differ only in
index names give the same tokens.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from typing import Any

from symlit.qcd.particles import Species
from symlit.qed import symba_format as sf
from symlit.qed.symba_format import Leg, SymbaFormatError
from symlit.qed.tokens import check_notation, nary, number_tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<gamma>gamma_\{(?P<g_up>\+?)\\INDEX_(?P<g_l>\d+),INDEX_(?P<g_a>\d+),INDEX_(?P<g_b>\d+)\})
  | (?P<gen>T_\{GLU_(?P<t_a>\d+),COL_(?P<t_i>\d+),COL_(?P<t_j>\d+)\})
  | (?P<fabc>f_\{GLU_(?P<f_a>\d+),GLU_(?P<f_b>\d+),GLU_(?P<f_c>\d+)\})
  | (?P<metric>g_\{\+?\\INDEX_(?P<m_a>\d+),\+?\\INDEX_(?P<m_b>\d+)\})
  | (?P<spinor>(?P<sp_f>[A-Za-z]+)_\{MOMENTUM_(?P<sp_m>\d+),INDEX_(?P<sp_i>\d+),COL_(?P<sp_c>\d+)\}\(p_(?P<sp_p>\d+)\)
        _(?P<sp_k>[uv])(?P<sp_conj>\^\(\*\))?)
  | (?P<pol>(?P<po_f>[A-Za-z]+)_\{MOMENTUM_(?P<po_m>\d+),(?P<po_up>\+?)\\INDEX_(?P<po_i>\d+)(?:,GLU_(?P<po_g>\d+))?\}
        \(p_(?P<po_p>\d+)\)(?P<po_c>\^\(\*\))?)
  | (?P<mom>p_(?P<mo_p>\d+)_(?P<mo_up>\+?)\\INDEX_(?P<mo_i>\d+))
  | (?P<num>\d+)
  | (?P<sym>[A-Za-z][A-Za-z0-9_]*)
  | (?P<pow>\*\*|\^)
  | (?P<op>[-+*/()])
    """,
    re.VERBOSE,
)


def _lex(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SymbaFormatError(f"cannot read {text[pos : pos + 30]!r} at character {pos}")
        pos = m.end()
        g = m.groupdict()
        if g["ws"] is not None:
            continue
        if g["gamma"] is not None:
            out.append(("atom", ("gamma", bool(g["g_up"]), int(g["g_l"]), int(g["g_a"]), int(g["g_b"]))))
        elif g["gen"] is not None:
            out.append(("atom", ("T", int(g["t_a"]), int(g["t_i"]), int(g["t_j"]))))
        elif g["fabc"] is not None:
            out.append(("atom", ("f", int(g["f_a"]), int(g["f_b"]), int(g["f_c"]))))
        elif g["metric"] is not None:
            out.append(("atom", ("metric", int(g["m_a"]), int(g["m_b"]))))
        elif g["spinor"] is not None:
            out.append(
                (
                    "atom",
                    (
                        "spinor",
                        g["sp_f"],
                        int(g["sp_m"]),
                        int(g["sp_i"]),
                        int(g["sp_p"]),
                        g["sp_k"],
                        bool(g["sp_conj"]),
                        int(g["sp_c"]),
                    ),
                )
            )
        elif g["pol"] is not None:
            glu = int(g["po_g"]) if g["po_g"] is not None else None
            out.append(
                (
                    "atom",
                    (
                        "pol",
                        g["po_f"],
                        int(g["po_m"]),
                        bool(g["po_up"]),
                        int(g["po_i"]),
                        int(g["po_p"]),
                        bool(g["po_c"]),
                        glu,
                    ),
                )
            )
        elif g["mom"] is not None:
            out.append(("atom", ("mom", int(g["mo_p"]), bool(g["mo_up"]), int(g["mo_i"]))))
        elif g["num"] is not None:
            out.append(("atom", ("num", Fraction(int(g["num"])))))
        elif g["sym"] is not None:
            out.append(("atom", ("I",) if g["sym"] == "i" else ("sym", g["sym"])))
        else:
            out.append(("op", "^" if m.lastgroup == "pow" else m.group(0)))
    return out


class _Parser(sf._Parser):  # the QED grammar, with the QCD lexer
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.pos = 0


def parse(text: str) -> tuple:
    """The parse tree of a QCD amplitude (raises :class:`SymbaFormatError`)."""
    return _Parser(text).parse()


def _walk(node: tuple):
    yield node
    if node[0] in ("add", "mul"):
        for a in node[1]:
            yield from _walk(a)
    elif node[0] == "pow":
        yield from _walk(node[1])
        yield from _walk(node[2])


def legs(node: tuple) -> list[Leg]:
    """The external legs of an amplitude parse tree, by momentum label."""
    found: dict[int, Leg] = {}
    for n in _walk(node):
        if n[0] == "spinor":
            _, f, _, _, p, kind, conj, _ = n
            leg = Leg(Species(f, kind == "v"), p, (kind == "u") != conj)
        elif n[0] == "pol":
            leg = Leg(Species(n[1]), n[5], not n[6])
        else:
            continue
        if found.setdefault(leg.p, leg) != leg:
            raise SymbaFormatError(f"momentum p_{leg.p} is given to two different external fields")
    return [found[p] for p in sorted(found)]


_SPINOR_HEADS = {
    "spinor_u": ("u", False),
    "spinor_ubar": ("u", True),
    "spinor_v": ("v", False),
    "spinor_vbar": ("v", True),
}


def legs_from_tokens(tokens: list[str] | str) -> list[Leg]:
    """The external legs named in a token sequence of :func:`amplitude_tokens`."""
    toks = tokens.split() if isinstance(tokens, str) else tokens
    found: dict[int, Leg] = {}
    for i, tok in enumerate(toks):
        if tok in _SPINOR_HEADS:
            kind, conj = _SPINOR_HEADS[tok]
            p = int(toks[i + 5][2:])
            found[p] = Leg(Species(toks[i + 1], kind == "v"), p, (kind == "u") != conj)
        elif tok in ("pol", "pol_conj"):
            width = 5 if toks[i + 1] == "G" else 4
            p = int(toks[i + width][2:])
            found[p] = Leg(Species(toks[i + 1]), p, tok == "pol")
    return [found[p] for p in sorted(found)]


def amplitude_tokens(node: tuple, notation: str = "hybrid") -> list[str]:
    """Tokens of an amplitude parse tree, dummy names renumbered by first appearance."""
    check_notation(notation)
    short = notation == "hybrid_short"
    names: dict[tuple[str, int], str] = {}
    prefixes = {"lor": "LOR_", "spin": "SPIN_", "field": "MOMENTUM_", "col": "COL_", "glu": "GLU_"}
    counters = {k: itertools.count() for k in prefixes}

    def rename(kind: str, idx: int) -> str:
        if (kind, idx) not in names:
            names[(kind, idx)] = prefixes[kind] + str(next(counters[kind]))
        return names[(kind, idx)]

    def lor(up: bool, idx: int) -> str:
        return ("^" if up else "") + rename("lor", idx)

    def enc(n: tuple) -> list[str]:
        kind = n[0]
        if kind == "num":
            return number_tokens(n[1])
        if kind == "I":
            return ["I"]
        if kind == "sym":
            return [n[1]]
        if kind in ("add", "mul"):
            return nary(kind, [enc(a) for a in n[1]], notation)
        if kind == "pow":
            if (
                short
                and n[1][0] == "sym"
                and n[1][1].startswith("m_")
                and n[2][0] == "num"
                and n[2][1].denominator == 1
                and n[2][1] >= 2
            ):
                return [f"m{n[2][1].numerator}{n[1][1][2:]}"]
            return ["pow", *enc(n[1]), *enc(n[2])]
        if kind == "gamma":
            return ["gamma", lor(n[1], n[2]), rename("spin", n[3]), rename("spin", n[4])]
        if kind == "T":
            return ["T", rename("glu", n[1]), rename("col", n[2]), rename("col", n[3])]
        if kind == "f":
            return ["f", *(rename("glu", x) for x in n[1:])]
        if kind == "metric":
            return ["metric", lor(True, n[1]), lor(True, n[2])]
        if kind == "spinor":
            _, f, label, sidx, p, sk, conj, col = n
            return [
                f"spinor_{sk}{'bar' if conj else ''}",
                f,
                rename("field", label),
                rename("spin", sidx),
                rename("col", col),
                f"p_{p}",
            ]
        if kind == "pol":
            _, f, label, up, l_idx, p, conj, glu = n
            out = ["pol_conj" if conj else "pol", f, rename("field", label), lor(up, l_idx)]
            return out + ([rename("glu", glu)] if glu is not None else []) + [f"p_{p}"]
        if kind == "mom":
            return ["mom", f"p_{n[1]}", lor(n[2], n[3])]
        raise SymbaFormatError(f"unknown node {kind!r}")

    return enc(node)
