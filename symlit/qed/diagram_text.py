"""QED diagrams as text and back: a diagram's amplitude in SYMBA's (MARTY's) format
(:func:`amplitude_text`), and the line structure of a diagram (:func:`topology`) as read from a
generated diagram or from a parsed amplitude (:func:`amplitude_topology`), so that the two can be
matched.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import TYPE_CHECKING

import sympy

if TYPE_CHECKING:
    from symlit.qed.generator import Diagram


def _rational_text(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _expr_text(expr: sympy.Expr) -> str:
    return sympy.sstr(expr, order="none").replace("**", "^")


def amplitude_text(d: Diagram, reg_prop: bool = False) -> str:
    """The amplitude of one diagram in SYMBA's (MARTY's) text format.

    The overall factor is ``i M`` with the metric of every photon propagator contracted, so that,
    as in MARTY's files, a 4-fermion diagram reads ``-i e^2 Q1 Q2 gamma^mu ... gamma_mu ... / q^2``
    and a fermion propagator appears as ``(q-slash + m) / (m^2 - q^2)`` up to the sign; propagator
    numerators are expanded into a sum of terms, each with its own dummy indices. Factor order
    inside a term: momenta and masses, gamma matrices, polarizations, spinors.
    """
    legs = d.process.legs
    n_f = sum(len(ln.slots) - 1 for ln in d.lines)
    n_a = len(d.internal)
    # i M = (-i e Q)^V * i^nF * (-i)^nA * (-1)^nA (metric contracted) * sign * (real rest)
    phase = (-1j) ** d.n_vertices * (1j) ** n_f * (-1j) ** n_a * (-1) ** n_a * d.sign
    imag = abs(phase.imag) > 0.5
    coeff = d.charge_factor() * round(phase.imag if imag else phase.real)

    counter = itertools.count()
    photon_lor: dict[tuple, int] = {}
    lowered: set[int] = set()  # internal photons whose upper index was already written

    def lor_of(slot: tuple[str, int]) -> int:
        key = ("x", legs[slot[1]].p) if slot[0] == "x" else slot
        if key not in photon_lor:
            photon_lor[key] = next(counter)
        return photon_lor[key]

    per_line: list[list[tuple[int, list[str], list[str], int, int]]] = []
    for i, ln in enumerate(d.lines):
        flavour = d.line_flavour(i)
        props = d.fermion_propagators(i)
        choices = [[("m", 0, 0)] + [("p", k, c) for k, c in q] for q in props]
        uppers = []
        for slot in ln.slots:
            uppers.append(slot[0] == "i" and slot[1] not in lowered)
            if slot[0] == "i":
                lowered.add(slot[1])
        terms = []
        for pick in itertools.product(*choices):
            sign, scalars, gammas = 1, [], []
            left = cur = next(counter)
            for k, slot in enumerate(ln.slots):
                nxt = next(counter)
                gammas.append(f"gamma_{{{'+' if uppers[k] else ''}\\INDEX_{lor_of(slot)},INDEX_{cur},INDEX_{nxt}}}")
                cur = nxt
                if k < len(props):
                    kind, mom, c = pick[k]
                    if kind == "m":
                        scalars.append(f"m_{flavour}")
                        continue
                    sign *= 1 if c > 0 else -1
                    li, nxt = next(counter), next(counter)
                    scalars.append((f"{abs(c)}*" if abs(c) != 1 else "") + f"p_{mom}_\\INDEX_{li}")
                    gammas.append(f"gamma_{{+\\INDEX_{li},INDEX_{cur},INDEX_{nxt}}}")
                    cur = nxt
            terms.append((sign, scalars, gammas, left, cur))
        per_line.append(terms)

    products = []
    for combo in itertools.product(*per_line):
        sign, scalars, gammas, fields = 1, [], [], []
        for i, (s_, sc, gs, left, right) in enumerate(combo):
            sign *= s_
            scalars += sc
            gammas += gs
            ln = d.lines[i]
            for pos, index, bar in ((ln.bar, left, True), (ln.unbar, right, False)):
                leg = legs[pos]
                fields.append(
                    f"{leg.species.name}_{{MOMENTUM_@,INDEX_{index}}}(p_{leg.p})"
                    f"_{'v' if leg.species.anti else 'u'}{'^(*)' if bar else ''}"
                )
        pols = [
            f"A_{{MOMENTUM_@,+\\INDEX_{lor_of(('x', pos))}}}(p_{leg.p}){'' if leg.incoming else '^(*)'}"
            for pos, leg in enumerate(legs)
            if not leg.species.particle.fermion
        ]
        products.append(("-" if sign < 0 else "") + "*".join(scalars + gammas + pols + fields))
    body = "+".join(products)
    pieces = body.split("MOMENTUM_@")
    body = pieces[0] + "".join(f"MOMENTUM_{k % len(legs)}" + piece for k, piece in enumerate(pieces[1:]))
    if len(products) > 1:
        body = f"({body})"
    head = _rational_text(abs(coeff))
    prefix = ("-" if coeff < 0 else "") + (f"{head}*" if head != "1" else "") + ("i*" if imag else "")
    prefix += f"e^{d.n_vertices}*" if d.n_vertices != 1 else "e*"
    from symlit.qed.generator import denominator  # generator writes rows with amplitude_text

    den = denominator(d, reg_prop)
    if den == 1:
        return prefix + body
    return prefix + body + "/(" + "*".join(f"({_expr_text(f)})" for f in sympy.Mul.make_args(den)) + ")"


def topology(d: Diagram) -> tuple:
    """Lines as ``(bar p, unbar p, slots)`` with slots ``("x", p)`` (external photon) or
    ``("i", (bar p, unbar p))`` (internal photon to that line); sorted. Equal for equal diagrams."""
    legs = d.process.legs
    ends = [(legs[ln.bar].p, legs[ln.unbar].p) for ln in d.lines]
    out = []
    for i, ln in enumerate(d.lines):
        slots = []
        for s in ln.slots:
            if s[0] == "x":
                slots.append(("x", legs[s[1]].p))
            else:
                a, b = d.internal[s[1]]
                slots.append(("i", ends[b if a == i else a]))
        out.append((*ends[i], tuple(slots)))
    return tuple(sorted(out))


def amplitude_topology(node: tuple) -> tuple:
    """The :func:`topology` of a SYMBA amplitude parse tree (read from its first term)."""
    from symlit.qed.symba_format import SymbaFormatError

    def terms(n: tuple) -> list[list[tuple]]:
        """The amplitude factors of every term of the expanded product."""
        if n[0] == "mul":
            out: list[list[tuple]] = [[]]
            for a in n[1]:
                out = [x + y for x in out for y in terms(a)]
            return out
        if n[0] == "add":
            return [t for a in n[1] for t in terms(a)]
        return [[n]] if n[0] in ("gamma", "spinor", "pol", "mom") else [[]]

    # MARTY sometimes applies the Dirac equation to some terms; the term with the most gamma
    # matrices keeps the whole chain
    atoms = max(terms(node), key=lambda t: sum(a[0] == "gamma" for a in t))
    gammas = [a for a in atoms if a[0] == "gamma"]
    slashed = {a[3] for a in atoms if a[0] == "mom"}
    pols = {a[4]: a[5] for a in atoms if a[0] == "pol"}
    next_gamma = {g[3]: g for g in gammas}
    spinor_at = {a[3]: a for a in atoms if a[0] == "spinor"}
    chains = []
    for a in atoms:
        if a[0] == "spinor" and a[6]:  # a conjugated spinor starts a chain
            cur, vertices = a[3], []
            for _ in range(len(gammas) + 1):
                if cur in next_gamma:
                    g = next_gamma[cur]
                    if g[2] not in slashed:
                        vertices.append(g[2])
                    cur = g[4]
                else:
                    break
            end = spinor_at.get(cur)
            if end is None or end[6]:
                raise SymbaFormatError("a spinor chain does not end on an unconjugated spinor")
            chains.append((a[4], end[4], vertices))
    owner: dict[int, list[int]] = {}
    for k, (_, _, vertices) in enumerate(chains):
        for lor in vertices:
            owner.setdefault(lor, []).append(k)
    out = []
    for k, (bar, unbar, vertices) in enumerate(chains):
        slots = []
        for lor in vertices:
            if lor in pols:
                slots.append(("x", pols[lor]))
            else:
                other = [j for j in owner[lor] if j != k]
                if len(other) != 1:
                    raise SymbaFormatError(f"Lorentz index {lor} does not join two fermion lines")
                slots.append(("i", chains[other[0]][:2]))
        out.append((bar, unbar, tuple(slots)))
    return tuple(sorted(out))
