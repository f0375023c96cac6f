"""A QCD diagram's amplitude ``i M`` as SYMBA-style text (the format: :mod:`symlit.qcd.symba_text`)."""

from __future__ import annotations

import itertools
import re

import sympy

from symlit.qcd.generator import Diagram, _adj, _col, _lor, _phase, amplitude
from symlit.qed import dirac
from symlit.qed.symba_format import sqamp_text


def amplitude_text(d: Diagram, reg_prop: bool = False) -> str:
    """``i M`` of diagram ``d`` in SYMBA-style text (format: :mod:`symlit.qcd.symba_text`).

    Quark propagator numerators are expanded into a sum of products (as in the QED generator);
    three- and four-gluon vertices stay one parenthesized factor each. Colour indices are numbered
    by first appearance (``COL_k``, ``GLU_k``); Lorentz and spinor indices share one counter.
    """
    amp = amplitude(d, reg_prop)
    legs = d.process.legs
    counter = itertools.count()
    lor_ids: dict[str, int] = {}
    col_ids: dict[str, int] = {}
    glu_ids: dict[str, int] = {}

    def lor(name: str) -> str:
        if name not in lor_ids:
            lor_ids[name] = next(counter)
        return f"+\\INDEX_{lor_ids[name]}"

    def col(name: str) -> str:
        return f"COL_{col_ids.setdefault(name, len(col_ids))}"

    def glu(name: str) -> str:
        return f"GLU_{glu_ids.setdefault(name, len(glu_ids))}"

    def vertex_text(poly: dirac.Poly) -> str:
        parts = []
        for mono, c in sorted(poly.items()):
            atoms = []
            for at in mono:
                if at[0] == "g":
                    atoms.append(f"g_{{{lor(at[1])},{lor(at[2])}}}")
                else:
                    atoms.append(f"p_{at[1][1:]}_{lor(at[2])}")
            head = ("-" if c < 0 else "+") + (f"{abs(c)}*" if abs(c) != 1 else "")
            parts.append(head + "*".join(atoms))
        text = "".join(parts).lstrip("+")
        return f"({text})" if len(parts) > 1 else text

    products = []
    for term in amp.terms:
        per_line = []
        for ln, factors in zip(d.lines, term.lines):
            flavour = legs[ln.bar].species.name
            choices = []
            for f in factors:
                if f[0][2][0] == "i":
                    choices.append([("gamma", f[0][2][1], 1)])
                else:
                    combo = amp.registry[f[0][2][1]]
                    choices.append([("m", None, 1)] + [("p", k, c) for k, c in combo])
            per_line.append((ln, flavour, list(itertools.product(*choices))))
        for picks in itertools.product(*(c for _, _, c in per_line)):
            sign, scalars, gammas, spinors = 1, [], [], []
            for (ln, flavour, _), pick in zip(per_line, picks):
                left = cur = next(counter)
                for kind, x, c in pick:
                    if kind == "m":
                        scalars.append(f"m_{flavour}")
                        continue
                    nxt = next(counter)
                    if kind == "gamma":
                        gammas.append(f"gamma_{{{lor(x)},INDEX_{cur},INDEX_{nxt}}}")
                    else:
                        sign *= 1 if c > 0 else -1
                        li = next(counter)
                        scalars.append((f"{abs(c)}*" if abs(c) != 1 else "") + f"p_{x}_+\\INDEX_{li}")
                        gammas.append(f"gamma_{{+\\INDEX_{li},INDEX_{cur},INDEX_{nxt}}}")
                    cur = nxt
                for pos, index, bar in ((ln.bar, left, True), (ln.unbar, cur, False)):
                    leg = legs[pos]
                    spinors.append(
                        f"{leg.species.name}_{{MOMENTUM_{pos},INDEX_{index},{col(_col(leg))}}}"
                        f"(p_{leg.p})_{'v' if leg.species.anti else 'u'}{'^(*)' if bar else ''}"
                    )
            vertices = [vertex_text(v) for v in term.vertices]
            colours = []
            for o in term.colour[0][1]:
                if o[0] == "T":
                    colours.append(f"T_{{{glu(o[1])},{col(o[2])},{col(o[3])}}}")
                elif o[0] == "f":
                    colours.append(f"f_{{{glu(o[1])},{glu(o[2])},{glu(o[3])}}}")
                else:
                    raise ValueError(f"{d.process}: a colour delta has no SYMBA text")
            pols = []
            for pos, leg in enumerate(legs):
                if leg.species.is_quark:
                    continue
                adj = f",{glu(_adj(leg))}" if leg.species.is_gluon else ""
                pols.append(
                    f"{leg.species.name}_{{MOMENTUM_{pos},{lor(_lor(leg))}{adj}}}(p_{leg.p})"
                    f"{'' if leg.incoming else '^(*)'}"
                )
            products.append(
                ("-" if sign < 0 else "") + "*".join(scalars + vertices + gammas + colours + pols + spinors)
            )
    body = "+".join(products).replace("+-", "-")
    if len(products) > 1:
        body = f"({body})"
    coeff, rest = amp.coupling.as_coeff_Mul()
    ph = _phase(amp.phase)
    negative = (ph.is_real and ph < 0) or (not ph.is_real and sympy.im(ph) < 0)
    if coeff < 0:
        negative, coeff = not negative, -coeff
    head = ("-" if negative else "") + (f"{coeff}*" if coeff != 1 else "") + ("" if ph.is_real else "i*")
    head += sqamp_text(rest) + "*"
    text = head + body
    if amp.denominators:
        text += "/(" + "*".join(f"({sqamp_text(x)})" for x in amp.denominators) + ")"
    return _renumber(_renumber(text, "COL"), "GLU")


def _renumber(text: str, kind: str) -> str:
    """``kind_k`` names renumbered 0, 1, … by first appearance in ``text``."""
    order: dict[str, int] = {}
    for m in re.finditer(rf"\b{kind}_(\d+)", text):
        order.setdefault(m.group(1), len(order))
    return re.sub(rf"\b{kind}_(\d+)", lambda m: f"{kind}_{order[m.group(1)]}", text)
