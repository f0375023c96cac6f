"""Tree-level 2 -> 2 QCD (with external photons): processes, diagrams, amplitudes, |M|² (the amplitude
text: :mod:`symlit.qcd.diagram_text`).

Feynman rules (Peskin & Schroeder, Fig. 16.7 and A.1; all momenta into the vertex):

* quark-gluon vertex ``i g_s γ^μ T^a``; quark-photon vertex ``-i e Q γ^μ`` (as in
  :mod:`symlit.qed.generator`); quark propagator ``i(q̸ + m)/(q² − m²)`` along the arrow;
* gluon propagator (Feynman gauge) ``−i g_{μν} δ^{ab} / q²``;
* three-gluon vertex ``g_s f^{abc} [g^{μν}(k−p)^ρ + g^{νρ}(p−q)^μ + g^{ρμ}(q−k)^ν]`` for gluons
  ``(a, μ, k), (b, ν, p), (c, ρ, q)``;
* four-gluon vertex ``−i g_s² [f^{abe}f^{cde}(g^{μρ}g^{νσ} − g^{μσ}g^{νρ}) + f^{ace}f^{bde}(g^{μν}g^{ρσ}
  − g^{μσ}g^{νρ}) + f^{ade}f^{bce}(g^{μν}g^{ρσ} − g^{μρ}g^{νσ})]``.

Diagrams are those of lowest order: ``g_s`` for every gluon vertex, one photon vertex per external
photon and no internal photons (QED-only processes belong to :mod:`symlit.qed`).

Squared amplitudes are summed over final and averaged over initial spins, polarisations and
colours (1/2 per incoming particle, 1/N per incoming quark, 1/(N²−1) per incoming gluon); the
colour sums are done by :mod:`symlit.qcd.colour`.

**Gluon polarisation sum.** With two or more external gluons, ``Σ ε^μ ε^{ν*} = −g^{μν}`` would
keep the unphysical (timelike and longitudinal) polarisations, whose contributions no longer
cancel because ``k_μ M^μ`` vanishes only when all *other* gluons are physical. We use the sum over
the two physical (transverse) polarisations, the light-cone / axial-gauge sum

    Σ ε^μ ε^{ν*} = −g^{μν} + (k^μ n^ν + n^μ k^ν) / (k·n)

with the lightlike reference vector ``n`` the momentum of another external gluon (the partner in
momentum order: 1↔2, 3↔4). We chose it over ghost subtraction because it needs no ghost diagrams,
keeps the whole-process result a plain rational function of ``s_ij``, and is exact at tree level
for any lightlike ``n`` with ``k·n ≠ 0`` (tests check that the whole process does not depend on the
choice). Per-diagram squares depend on ``n`` (only their sum is gauge invariant); that is the
convention of the per-diagram rows. A single external gluon, and photons, take ``−g^{μν}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import sympy

from symlit.qcd import colour
from symlit.qcd.particles import GLUON, PHOTON, QUARKS, Species, all_species
from symlit.qed import dirac
from symlit.qed.generator import Process as QEDProcess
from symlit.qed.generator import (
    combo_text,
    interference_sum,
    level_rows,
    permutation_sign,
    poly_to_sympy,
    run_processes,
    s_symbol,
    spin_chains,
    spin_sum,
    square_of,
    symmetry_factor,
)
from symlit.qed.symba_format import Leg

GS = sympy.Symbol("g_s")
E = sympy.Symbol("e")
REG_PROP = sympy.Symbol("reg_prop")
Combo = tuple


# ---------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Process(QEDProcess):
    """External legs of QCD species, incoming first, momentum labels ``1..4``."""

    species: ClassVar[type] = Species


def _is_bar(leg: Leg) -> bool:
    """``ū`` (outgoing quark) or ``v̄`` (incoming antiquark)."""
    return leg.incoming == leg.species.anti


def _mom(leg: Leg) -> dict[int, int]:
    """Momentum flowing into the diagram through ``leg``."""
    return {leg.p: 1 if leg.incoming else -1}


def _add(*combos: dict[int, int], scale: int = 1) -> dict[int, int]:
    out: dict[int, int] = {}
    for c in combos:
        for k, v in c.items():
            out[k] = out.get(k, 0) + scale * v
    return {k: v for k, v in out.items() if v}


def _combo(d: dict[int, int]) -> Combo:
    return tuple(sorted(d.items()))


def _canonical(process: Process, combo: dict[int, int]) -> dict[int, int]:
    """Eliminate the last momentum label with momentum conservation (as the QED generator does)."""
    last = process.legs[-1]
    c = combo.get(last.p, 0)
    if not c:
        return combo
    total = {l.p: 1 if l.incoming else -1 for l in process.legs}
    return {k: v for k in total if (v := combo.get(k, 0) - c * total[last.p] * total[k])}


def enumerate_processes(particles: Sequence[str] | None = None, orderings: bool = False) -> list[Process]:
    """Every 2 -> 2 process of ``particles`` (default: quarks, ``G``, ``A``) with at least one
    QCD vertex at tree level: each multiset of incoming and outgoing species once (species sorted),
    or with ``orderings`` every distinct order of the incoming and of the outgoing legs (momentum
    labellings, as in MARTY's data)."""
    species = sorted(all_species(list(particles) if particles else None))
    out = []
    for ins in itertools.combinations_with_replacement(species, 2):
        for outs in itertools.combinations_with_replacement(species, 2):
            proc = Process.make(ins, outs)
            if next(iter(diagrams(proc)), None) is None:
                continue
            if not orderings:
                out.append(proc)
                continue
            seen = set()
            for i in itertools.permutations(ins):
                for o in itertools.permutations(outs):
                    if (i, o) not in seen:
                        seen.add((i, o))
                        out.append(Process.make(i, o))
    return out


# ---------------------------------------------------------------------------- diagrams
@dataclass(frozen=True)
class Line:
    """A quark line from its bar end to its unbar end (leg positions) with its boson slots, from
    the bar end: ``("x", leg position)`` an external boson, ``("i", 0)`` the internal gluon."""

    bar: int
    unbar: int
    slots: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Diagram:
    """A 2 -> 2 tree diagram: ``channel`` ``"s"``/``"t"``/``"u"`` (leg 1 meets leg 2/3/4 at a
    vertex) or ``"c"`` (four-gluon contact); ``internal`` the propagating species name."""

    process: Process
    channel: str
    internal: str | None
    lines: tuple[Line, ...]
    pair: tuple[tuple[int, int], tuple[int, int]]  # leg positions meeting at each vertex
    sign: int = 1

    def label(self) -> str:
        """``"t: G"`` or ``"c"``."""
        return self.channel if self.internal is None else f"{self.channel}: {self.internal}"


def _vertex_ok(legs: Sequence[Leg], internal: str, side_quark: Leg | None = None) -> bool:
    """Can the two ``legs`` meet the internal line ``internal`` at a vertex?"""
    sp = [l.species for l in legs]
    if internal == GLUON:
        if all(s.is_gluon for s in sp):
            return True
        return all(s.is_quark for s in sp) and sp[0].name == sp[1].name and _is_bar(legs[0]) != _is_bar(legs[1])
    # an internal quark of flavour `internal`: one external quark of that flavour and a boson
    quarks = [l for l in legs if l.species.is_quark]
    bosons = [l for l in legs if not l.species.is_quark]
    return len(quarks) == 1 and len(bosons) == 1 and quarks[0].species.name == internal


def diagrams(process: Process) -> Iterator[Diagram]:
    """Every tree-level diagram of a 2 -> 2 ``process`` (lowest order, no internal photons)."""
    legs = process.legs
    if len(legs) != 4:
        raise ValueError(f"{process}: the QCD generator makes 2 -> 2 processes only")
    n_photons = sum(l.species.name == PHOTON for l in legs)
    quarks = [i for i, l in enumerate(legs) if l.species.is_quark]
    if n_photons == len(legs) - len(quarks) and n_photons == 2:
        return  # q q~ -> A A and crossings: pure QED
    bars = sorted(i for i in quarks if _is_bar(legs[i]))
    unbars = sorted(i for i in quarks if not _is_bar(legs[i]))
    if len(bars) != len(unbars):
        return
    if not quarks and all(l.species.is_gluon for l in legs):
        yield Diagram(process, "c", None, (), ((0, 1), (2, 3)))
    rank = {i: r for r, i in enumerate(sorted(quarks))}
    for channel, partner in (("s", 1), ("t", 2), ("u", 3)):
        a = (0, partner)
        b = tuple(i for i in range(1, 4) if i != partner)
        for internal in (GLUON, *sorted({legs[i].species.name for i in quarks})):
            if not (_vertex_ok([legs[i] for i in a], internal) and _vertex_ok([legs[i] for i in b], internal)):
                continue
            if internal == GLUON:
                lines = []
                for side in (a, b):
                    if legs[side[0]].species.is_quark:
                        bar, unbar = sorted(side, key=lambda i: not _is_bar(legs[i]))
                        lines.append(Line(bar, unbar, (("i", 0),)))
                lines.sort(key=lambda ln: ln.bar)
                sign = permutation_sign([rank[x] for ln in lines for x in (ln.bar, ln.unbar)]) if len(lines) == 2 else 1
                if any(legs[ln.bar].species.name != legs[ln.unbar].species.name for ln in lines):
                    continue
                yield Diagram(process, channel, internal, tuple(lines), (a, b), sign)
            else:
                qa = next(i for i in a if legs[i].species.is_quark)
                qb = next(i for i in b if legs[i].species.is_quark)
                if _is_bar(legs[qa]) == _is_bar(legs[qb]):
                    continue
                ba = next(i for i in a if i != qa)
                bb = next(i for i in b if i != qb)
                bar, unbar = (qa, qb) if _is_bar(legs[qa]) else (qb, qa)
                slots = (("x", ba), ("x", bb)) if bar == qa else (("x", bb), ("x", ba))
                yield Diagram(process, channel, internal, (Line(bar, unbar, slots),), (a, b), 1)


# ---------------------------------------------------------------------------- amplitude pieces
@dataclass
class Term:
    """One colour structure of a diagram: colour factor, Lorentz vertex factors (polys with free
    indices, multiplied together) and the Dirac factors of every quark line (bar end first)."""

    colour: list
    vertices: list  # of dirac.Poly
    lines: list  # of list of dirac.Factor


@dataclass
class Amplitude:
    """``i M`` of a diagram = ``phase * coupling * Σ_terms (colour × Lorentz) / Π denominators``."""

    diagram: Diagram
    phase: complex
    coupling: sympy.Expr
    terms: list[Term]
    denominators: list[sympy.Expr]
    registry: dict[str, Combo] = field(default_factory=dict)


def _lor(leg: Leg) -> str:
    return f"L{leg.p}"


def _adj(leg: Leg) -> str:
    return f"a{leg.p}"


def _col(leg: Leg) -> str:
    return f"i{leg.p}"


def _vector_poly(combo: dict[int, int], index: str, registry: dict[str, Combo]) -> dirac.Poly:
    """``q^index`` for ``q = Σ c_k p_k`` as a polynomial of ``("v", "p<k>", index)`` atoms."""
    out: dirac.Poly = {}
    for k, c in combo.items():
        registry[f"p{k}"] = ((k, 1),)
        out[(("v", f"p{k}", index),)] = c
    return out


def _metric(mu: str, nu: str) -> dirac.Poly:
    return {(("g", *sorted((mu, nu))),): 1}


def three_gluon(gluons: Sequence[tuple[str, dict[int, int]]], registry: dict[str, Combo]) -> dirac.Poly:
    """``g^{μν}(k−p)^ρ + g^{νρ}(p−q)^μ + g^{ρμ}(q−k)^ν`` for ``(μ, k), (ν, p), (ρ, q)`` incoming."""
    (mu, k), (nu, p), (rho, q) = gluons
    out: dirac.Poly = {}
    for (x, y, z), (m1, m2) in (((mu, nu, rho), (k, p)), ((nu, rho, mu), (p, q)), ((rho, mu, nu), (q, k))):
        diff = _add(m1, {k_: -v for k_, v in m2.items()})
        out = dirac.poly_add(out, dirac.poly_mul(_metric(x, y), _vector_poly(diff, z, registry), False))
    return out


def four_gluon(mu: str, nu: str, rho: str, sigma: str) -> list[tuple[dirac.Poly, int]]:
    """The Lorentz parts of the three colour structures of the four-gluon vertex (without −i)."""

    def gg(a: str, b: str, c: str, d: str) -> dirac.Poly:
        return dirac.poly_mul(_metric(a, b), _metric(c, d), False)

    return [
        dirac.poly_add(gg(mu, rho, nu, sigma), gg(mu, sigma, nu, rho), -1),
        dirac.poly_add(gg(mu, nu, rho, sigma), gg(mu, sigma, nu, rho), -1),
        dirac.poly_add(gg(mu, nu, rho, sigma), gg(mu, rho, nu, sigma), -1),
    ]


def amplitude(d: Diagram, reg_prop: bool = False) -> Amplitude:
    """The Feynman-rule pieces of diagram ``d`` (see the module docstring)."""
    legs = d.process.legs
    one = sympy.Integer(1)
    reg = REG_PROP if reg_prop else 0
    registry: dict[str, Combo] = {}
    phase, coupling, dens = complex(d.sign), one, []
    a, b = d.pair
    if d.channel == "c":
        mu, nu, rho, sigma = (_lor(l) for l in legs)
        ga, gb, gc, gd = (_adj(l) for l in legs)
        colours = [
            [(one, (("f", ga, gb, "c"), ("f", gc, gd, "c")))],
            [(one, (("f", ga, gc, "c"), ("f", gb, gd, "c")))],
            [(one, (("f", ga, gd, "c"), ("f", gb, gc, "c")))],
        ]
        terms = [Term(c, [lor], []) for c, lor in zip(colours, four_gluon(mu, nu, rho, sigma))]
        return Amplitude(d, -1j, GS**2, terms, [], registry)
    # momentum of the internal line flowing from side b into side a's vertex
    q_into_a = _canonical(d.process, _add(*(_mom(legs[i]) for i in b)))
    if d.internal == GLUON:
        phase *= -1j  # gluon propagator -i g_{μν} δ^{ab}: indices identified ("r", "c")
        dens.append(square_of(d.process, _combo(q_into_a)) + reg)
    colour_objs: list = []
    vertices: list = []
    for side, q_in in ((a, q_into_a), (b, {k: -v for k, v in q_into_a.items()})):
        pair = [legs[i] for i in side]
        if d.internal == GLUON and all(l.species.is_gluon for l in pair):
            coupling *= GS
            colour_objs.append(("f", _adj(pair[0]), _adj(pair[1]), "c"))
            vertices.append(
                three_gluon([(_lor(pair[0]), _mom(pair[0])), (_lor(pair[1]), _mom(pair[1])), ("r", q_in)], registry)
            )
    lines = []
    for ln in d.lines:
        flavour = legs[ln.bar].species
        mass = flavour.particle.mass_name
        factors: list = []
        gluon_slots = []
        for k, slot in enumerate(ln.slots):
            if slot[0] == "i":
                index, is_gluon = "r", True
                gluon_slots.append("c")
            else:
                boson = legs[slot[1]]
                index, is_gluon = _lor(boson), boson.species.is_gluon
                if is_gluon:
                    gluon_slots.append(_adj(boson))
            factors.append(dirac.gamma(index))
            if is_gluon:
                phase *= 1j
                coupling *= GS
            else:
                phase *= -1j
                q = flavour.particle.charge
                coupling *= E * sympy.Rational(q.numerator, q.denominator)
            if k < len(ln.slots) - 1:  # quark propagator: momentum along the arrow
                qmom = _canonical(d.process, _add(_mom(legs[ln.unbar]), *(_mom(legs[s[1]]) for s in ln.slots[k + 1 :])))
                name = combo_text(_combo(qmom))
                registry[name] = _combo(qmom)
                factors.append(dirac.slash(name, mass, 1))
                phase *= 1j
                dens.append(square_of(d.process, _combo(qmom)) - flavour.particle.mass**2 + reg)
        lines.append(factors)
        i_bar, i_unbar = _col(legs[ln.bar]), _col(legs[ln.unbar])
        if not gluon_slots:
            colour_objs.append(("d", i_bar, i_unbar))
        else:
            chain = [i_bar] + [f"k{ln.bar}_{j}" for j in range(len(gluon_slots) - 1)] + [i_unbar]
            colour_objs += [("T", g, chain[j], chain[j + 1]) for j, g in enumerate(gluon_slots)]
    for ln in d.lines:
        registry[f"p{legs[ln.bar].p}"] = ((legs[ln.bar].p, 1),)
        registry[f"p{legs[ln.unbar].p}"] = ((legs[ln.unbar].p, 1),)
    return Amplitude(d, phase, coupling, [Term([(one, tuple(colour_objs))], vertices, lines)], dens, registry)


# ---------------------------------------------------------------------------- squaring
def _tag_poly(poly: dirac.Poly, tag: str) -> dirac.Poly:
    out: dirac.Poly = {}
    for mono, c in poly.items():
        atoms = []
        for at in mono:
            if at[0] == "g":
                atoms.append(("g", *sorted((tag + at[1], tag + at[2]))))
            elif at[0] == "v":
                atoms.append(("v", at[1], tag + at[2]))
            else:
                atoms.append(at)
        out[tuple(sorted(atoms))] = c
    return out


def _tag_factor(factor: dirac.Factor, tag: str) -> dirac.Factor:
    return tuple((c, m, ("i", tag + it[1]) if it is not None and it[0] == "i" else it) for c, m, it in factor)


def _is_external_colour(name: str) -> bool:
    return name[0] in "ia" and name[1:].isdigit()


def _tag_colour(terms: list, tag: str) -> list:
    return [
        (c, tuple((o[0], *(x if _is_external_colour(x) else tag + x for x in o[1:])) for o in objs))
        for c, objs in terms
    ]


def reference_leg(process: Process, leg: Leg) -> Leg | None:
    """The lightlike reference momentum of an external gluon's physical polarisation sum: the other
    gluon of its pair in momentum order (1↔2, 3↔4, or the only other one), or ``None`` (``−g``)
    when ``leg`` is not a gluon or is the only external gluon."""
    gluons = [l for l in process.legs if l.species.is_gluon]
    if not leg.species.is_gluon or len(gluons) < 2:
        return None
    k = gluons.index(leg)
    partner = k ^ 1
    return gluons[partner] if partner < len(gluons) else gluons[0]


def polarisation_sum(process: Process, leg: Leg, physical: bool = True) -> dirac.Poly:
    """``Σ ε^{a:μ} ε^{b:ν*}`` of an external boson (see the module docstring); ``physical=False``
    gives ``−g^{μν}`` for every boson (wrong with two or more external gluons: tests show it)."""
    mu, nu = "a" + _lor(leg), "b" + _lor(leg)
    out: dirac.Poly = {(("g", *sorted((mu, nu))),): -1}
    ref = reference_leg(process, leg) if physical else None
    if ref is not None:
        inv = ("m", f"_inv_{leg.p}_{ref.p}")
        k, n = f"p{leg.p}", f"p{ref.p}"
        for x, y in ((k, n), (n, k)):
            mono = tuple(sorted((("v", x, mu), ("v", y, nu), inv)))
            out[mono] = out.get(mono, 0) + 1
    return out


def _traces(a: Amplitude, ta: Term, b: Amplitude, tb: Term, engine: dirac.TraceEngine) -> dirac.Poly:
    """Spin sum of the Dirac part of ``ta tb*``: products of traces along the closed quark loops."""
    legs = a.diagram.process.legs
    result: dirac.Poly = {(): 1}
    for chain in spin_chains(a.diagram.lines, b.diagram.lines):
        factors: list = []
        for la, y, lb, x in chain:
            factors += [_tag_factor(f, "a") for f in ta.lines[la]]
            factors.append(spin_sum(legs[y]))
            factors += [_tag_factor(f, "b") for f in tb.lines[lb][::-1]]
            factors.append(spin_sum(legs[x]))
        result = dirac.poly_mul(result, engine.trace(factors))
    return result


def _phase(z: complex) -> sympy.Expr:
    return sympy.Integer(round(z.real)) + sympy.I * sympy.Integer(round(z.imag))


def average_factor(process: Process) -> sympy.Expr:
    """1/2 per incoming particle (spins, polarisations), 1/N per incoming quark, 1/(N²−1) per gluon."""
    out = sympy.Rational(1, 2 ** sum(l.incoming for l in process.legs))
    for l in process.legs:
        if l.incoming and l.species.is_quark:
            out /= colour.N
        elif l.incoming and l.species.is_gluon:
            out /= colour.N**2 - 1
    return out


def squared_pair(
    a: Amplitude,
    b: Amplitude,
    engine: dirac.TraceEngine | None = None,
    physical: bool = True,
    identical_factor: bool = False,
    n_colours: int | None = 3,
    real_part: bool = True,
) -> sympy.Expr:
    """Summed and averaged ``Re(M_a M_b*)`` (``real_part``; else ``M_a M_b*``), unsimplified, in
    ``N`` (symbolic when ``n_colours`` is ``None``)."""
    engine = engine or dirac.TraceEngine()
    proc = a.diagram.process
    registry = {**a.registry, **b.registry, **{f"p{l.p}": ((l.p, 1),) for l in proc.legs}}
    pol = [polarisation_sum(proc, l, physical) for l in proc.legs if not l.species.is_quark]
    total = sympy.Integer(0)
    for ta in a.terms:
        for tb in b.terms:
            c = colour.colour_sum(_tag_colour(ta.colour, "a"), colour.conjugate(_tag_colour(tb.colour, "b")))
            k = _phase(a.phase) * _phase(b.phase.conjugate()) * c
            k = sympy.expand(k.subs(colour.N, n_colours) if n_colours is not None else k)
            if real_part:
                k = sympy.re(k)
            if k == 0:
                continue
            poly: dirac.Poly = {(): 1}
            for v in ta.vertices:
                poly = dirac.poly_mul(poly, _tag_poly(v, "a"))
            for p in pol:
                poly = dirac.poly_mul(poly, p)
            for v in tb.vertices:
                poly = dirac.poly_mul(poly, _tag_poly(v, "b"))
            poly = dirac.poly_mul(poly, _traces(a, ta, b, tb, engine))
            lorentz = poly_to_sympy(poly, proc, registry)
            total += k * lorentz
    inv = {
        sympy.Symbol(f"_inv_{l.p}_{r.p}"): 1 / s_symbol(l.p, r.p)
        for l in proc.legs
        if (r := reference_leg(proc, l)) is not None
    }
    total = total.xreplace(inv) if inv else total
    sym = symmetry_factor(proc) if identical_factor else 1
    den = sympy.Mul(*a.denominators, *b.denominators)
    out = sym * average_factor(proc) * a.coupling * b.coupling * total / den
    return out.subs(colour.N, n_colours) if n_colours is not None else out


def squared_diagram(
    d: Diagram,
    engine: dirac.TraceEngine | None = None,
    physical: bool = True,
    identical_factor: bool = False,
    n_colours: int | None = 3,
    reg_prop: bool = False,
) -> sympy.Expr:
    """Summed and averaged ``|M_d|²`` of one diagram (polarisation-sum convention: module docstring)."""
    amp = amplitude(d, reg_prop)
    return squared_pair(amp, amp, engine, physical, identical_factor, n_colours)


def squared_process(
    process: Process,
    engine: dirac.TraceEngine | None = None,
    physical: bool = True,
    identical_factor: bool = False,
    n_colours: int | None = 3,
    reg_prop: bool = False,
) -> sympy.Expr:
    """``|Σ_d M_d|²`` summed and averaged, interference included, unsimplified."""
    engine = engine or dirac.TraceEngine()
    amps = [amplitude(d, reg_prop) for d in diagrams(process)]
    return interference_sum(amps, lambda a, b: squared_pair(a, b, engine, physical, identical_factor, n_colours))


# ---------------------------------------------------------------------------- keys for leak-free splits
def _species_key(sp: Species, conjugate: bool) -> str:
    return str(sp.conjugate() if conjugate else sp)


def _flavour_blind(names: list[str]) -> list[str]:
    """Quark flavours renamed ``q0, q1, …`` by first appearance (``~`` kept)."""
    seen: dict[str, str] = {}
    out = []
    for n in names:
        base, bar = (n[:-1], "~") if n.endswith("~") else (n, "")
        if base in QUARKS:
            base = seen.setdefault(base, f"q{len(seen)}")
        out.append(base + bar)
    return out


def diagram_keys(d: Diagram) -> dict[str, str]:
    """Canonical keys of ``d`` at four levels, for splits that keep a key on one side:

    * ``diagram``: the labelled diagram (process in momentum order and channel);
    * ``diagram_class``: the diagram up to relabelling of momenta, swaps of identical particles
      and charge conjugation (vertices as multisets of (species, in/out), the propagator species);
    * ``process``: the process up to leg order and charge conjugation;
    * ``process_family``: the process up to quark flavours as well (``u d -> u d`` = ``c s -> c s``).
    """
    legs = d.process.legs

    def side(l: Leg, conj: bool) -> str:
        return ("in " if l.incoming else "out ") + _species_key(l.species, conj)

    def process_text(conj: bool, blind: bool) -> str:
        ins = sorted(_species_key(l.species, conj) for l in legs if l.incoming)
        outs = sorted(_species_key(l.species, conj) for l in legs if not l.incoming)
        if blind:
            names = _flavour_blind(ins + outs)
            ins, outs = sorted(names[: len(ins)]), sorted(names[len(ins) :])
        return f"{' '.join(ins)} -> {' '.join(outs)}"

    def cls(conj: bool) -> str:
        if d.channel == "c":
            vertices = "contact"
        else:
            verts = sorted(" + ".join(sorted(side(legs[i], conj) for i in pair)) for pair in d.pair)
            vertices = " | ".join(verts) + f" via {d.internal}"
        return f"{process_text(conj, False)} :: {vertices}"

    return {
        "diagram": f"{d.process.name} :: {d.label()}",
        "diagram_class": min(cls(False), cls(True)),
        "process": min(process_text(False, False), process_text(True, False)),
        "process_family": min(process_text(False, True), process_text(True, True)),
    }


# ---------------------------------------------------------------------------- generation
@dataclass
class GeneratedRow:
    """One example: amplitude text, squared amplitude, its process, diagram and split keys."""

    process: str
    diagram: str  # diagram label, or "process" for a whole-process row
    amp: str
    sqamp: sympy.Expr
    simplified: bool  # False when factor() ran out of CPU time (the row keeps the expanded form)
    seconds: float  # CPU seconds squaring and factoring took (a measurement: not the same in every run)
    keys: dict[str, str]


def generate_process(
    process: Process,
    level: str = "diagram",
    simplify_timeout: float | None = 10.0,
    identical_factor: bool = True,
    n_colours: int | None = 3,
    reg_prop: bool = False,
    engine: dirac.TraceEngine | None = None,
) -> list[GeneratedRow]:
    """Rows of one process: one per diagram (``level="diagram"``) or one with every diagram and
    their interference (``level="process"``). ``simplify_timeout``: CPU seconds for ``factor``
    per squared amplitude (a row that runs out keeps the expanded form, ``simplified=False``).
    ``identical_factor``: MARTY's 1/n! for identical final particles; ``n_colours``: N (``None``
    keeps the symbol ``N``)."""
    from symlit.qcd.diagram_text import amplitude_text  # it reads this module's amplitudes

    engine = engine or dirac.TraceEngine()

    def process_row(ds: list[Diagram], amp: str, sq: sympy.Expr, ok: bool, seconds: float) -> GeneratedRow:
        keys = diagram_keys(ds[0])
        keys["diagram"] = keys["diagram_class"] = f"{keys['process']} :: process"
        return GeneratedRow(process.name, "process", amp, sq, ok, seconds, keys)

    return level_rows(
        level,
        diagrams(process),
        simplify_timeout,
        amplitude=lambda d: amplitude_text(d, reg_prop),
        square_diagram=lambda d: squared_diagram(d, engine, True, identical_factor, n_colours, reg_prop),
        square_process=lambda: squared_process(process, engine, True, identical_factor, n_colours, reg_prop),
        diagram_row=lambda k, d, amp, sq, ok, seconds: GeneratedRow(
            process.name, d.label(), amp, sq, ok, seconds, diagram_keys(d)
        ),
        process_row=process_row,
    )


def generate(
    processes: Sequence[Process],
    level: str = "diagram",
    simplify_timeout: float | None = 10.0,
    identical_factor: bool = True,
    n_colours: int | None = 3,
    reg_prop: bool = False,
    workers: int = 0,
) -> list[GeneratedRow]:
    """Rows of every process, in order (:func:`generate_process`); ``workers > 0`` uses that many
    worker processes (whose main thread makes the ``factor`` CPU-time limit effective)."""
    jobs = [(p, level, simplify_timeout, identical_factor, n_colours, reg_prop) for p in processes]
    return run_processes(generate_process, jobs, workers)
