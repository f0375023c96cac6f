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

from typing import Any, ClassVar

from symlit.qcd.particles import Species
from symlit.qed import symba_format as sf
from symlit.qed.symba_format import Leg, SymbaFormatError

_TOKEN = sf.token_pattern(  # the QED lexer's pattern, with colour and colour-carrying fields
    r"""
  | (?P<gen>T_\{GLU_(?P<t_a>\d+),COL_(?P<t_i>\d+),COL_(?P<t_j>\d+)\})
  | (?P<fabc>f_\{GLU_(?P<f_a>\d+),GLU_(?P<f_b>\d+),GLU_(?P<f_c>\d+)\})
  | (?P<metric>g_\{\+?\\INDEX_(?P<m_a>\d+),\+?\\INDEX_(?P<m_b>\d+)\})
  | (?P<spinor>(?P<sp_f>[A-Za-z]+)_\{MOMENTUM_(?P<sp_m>\d+),INDEX_(?P<sp_i>\d+),COL_(?P<sp_c>\d+)\}\(p_(?P<sp_p>\d+)\)
        _(?P<sp_k>[uv])(?P<sp_conj>\^\(\*\))?)
  | (?P<pol>(?P<po_f>[A-Za-z]+)_\{MOMENTUM_(?P<po_m>\d+),(?P<po_up>\+?)\\INDEX_(?P<po_i>\d+)(?:,GLU_(?P<po_g>\d+))?\}
        \(p_(?P<po_p>\d+)\)(?P<po_c>\^\(\*\))?)
"""
)


def _field(g: dict[str, Any]) -> tuple:
    """The node of a QCD field or colour token from its match groups."""
    if g["gen"] is not None:
        return ("T", int(g["t_a"]), int(g["t_i"]), int(g["t_j"]))
    if g["fabc"] is not None:
        return ("f", int(g["f_a"]), int(g["f_b"]), int(g["f_c"]))
    if g["metric"] is not None:
        return ("metric", int(g["m_a"]), int(g["m_b"]))
    if g["spinor"] is not None:
        spinor = (g["sp_f"], int(g["sp_m"]), int(g["sp_i"]), int(g["sp_p"]), g["sp_k"], bool(g["sp_conj"]))
        return ("spinor", *spinor, int(g["sp_c"]))
    glu = int(g["po_g"]) if g["po_g"] is not None else None
    return ("pol", g["po_f"], int(g["po_m"]), bool(g["po_up"]), int(g["po_i"]), int(g["po_p"]), bool(g["po_c"]), glu)


def _lex(text: str) -> list[tuple[str, Any]]:
    return sf.lex(text, _TOKEN, _field)


def parse(text: str) -> tuple:
    """The parse tree of a QCD amplitude (raises :class:`SymbaFormatError`)."""
    return sf.Parser(text, _lex).parse()  # the QED grammar, with the QCD lexer


def legs(node: tuple) -> list[Leg]:
    """The external legs of an amplitude parse tree, by momentum label."""
    found: dict[int, Leg] = {}
    for n in sf.nodes(node):
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


def legs_from_tokens(tokens: list[str] | str) -> list[Leg]:
    """The external legs named in a token sequence of :func:`amplitude_tokens` (a spinor's and a
    gluon's momentum stand one token later than in QED: after the colour index)."""
    return sf.legs_from_tokens(tokens, Species, lambda head, name: 5 if head.startswith("spinor") or name == "G" else 4)


class _TokenEncoder(sf.TokenEncoder):
    """The QED encoder, with colour indices renumbered too (``COL_k``, ``GLU_k``)."""

    PREFIXES: ClassVar[dict[str, str]] = {**sf.TokenEncoder.PREFIXES, "col": "COL_", "glu": "GLU_"}

    def field(self, n: tuple) -> list[str]:
        kind = n[0]
        if kind == "T":
            return ["T", self.rename("glu", n[1]), self.rename("col", n[2]), self.rename("col", n[3])]
        if kind == "f":
            return ["f", *(self.rename("glu", x) for x in n[1:])]
        if kind == "metric":
            return ["metric", self.lor(True, n[1]), self.lor(True, n[2])]
        if kind == "spinor":
            _, f, label, sidx, p, sk, conj, col = n
            head = f"spinor_{sk}{'bar' if conj else ''}"
            names = [self.rename("field", label), self.rename("spin", sidx), self.rename("col", col)]
            return [head, f, *names, f"p_{p}"]
        if kind == "pol":
            _, f, label, up, l_idx, p, conj, glu = n
            out = ["pol_conj" if conj else "pol", f, self.rename("field", label), self.lor(up, l_idx)]
            return out + ([self.rename("glu", glu)] if glu is not None else []) + [f"p_{p}"]
        return super().field(n)


def amplitude_tokens(node: tuple, notation: str = "hybrid") -> list[str]:
    """Tokens of an amplitude parse tree, dummy names renumbered by first appearance."""
    return _TokenEncoder(notation).encode(node)
