"""Tree-level QED: processes, Feynman diagrams, squared amplitudes, and the generation of SYMBA-format
rows (a diagram's amplitude text: :mod:`symlit.qed.diagram_text`).

Conventions (those of SYMBA's MARTY data, checked in ``benchmarks/bench_qed.py``):

* momenta ``p_1 … p_n``: incoming particles first, then outgoing; ``s_ij = p_i·p_j`` and
  on-shell ``p_i² = m_i²`` (0 for photons) is substituted;
* Feynman rules: vertex ``-i e Q γ^μ`` (``Q`` the fermion's charge in units of ``e``), fermion
  propagator ``i(q̸ + m)/(q² - m²)`` with ``q`` along the fermion arrow, photon propagator
  ``-i g_μν / q²`` (Feynman gauge), photon polarization sum ``-g_μν``;
* squared amplitudes are summed over final and averaged over initial spins and polarizations
  (1/2 for every incoming fermion and photon); no symmetry factor for identical final particles and
  no colour factor (QED only); ``|M|²`` of one diagram, or of the whole process with the
  interference terms (:func:`squared_process`).

A diagram is built from fermion *lines*: a line runs from a "bar" end (an outgoing particle ``ū``
or incoming antiparticle ``v̄``) to an "unbar" end (an incoming particle ``u`` or outgoing
antiparticle ``v``) of the same flavour, with photon vertices in order along it. At tree level the
internal photons connect the lines into a tree. The relative sign of diagrams is the parity of the
permutation of external fermions in the product of spinor chains.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

import sympy
from sympy.core import random as sympy_random

from symlit.core.limits import SampleTimeout, owns, time_limit
from symlit.core.processes import die_with_parent
from symlit.qed import dirac
from symlit.qed.diagram_text import amplitude_text
from symlit.qed.particles import Species, all_species, particle
from symlit.qed.symba_format import Leg, process_name

Combo = tuple  # sorted tuple of (momentum label, integer coefficient): a linear combination of p_i
DiagramT = TypeVar("DiagramT")  # a QED or QCD diagram
RowT = TypeVar("RowT")  # a QED or QCD generated row


# ---------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Process:
    """An ordered list of external legs, incoming first (momentum labels ``1..n``). Subclasses set
    :attr:`species` to their particle table's ``Species`` (QCD: :mod:`symlit.qcd.generator`)."""

    legs: tuple[Leg, ...]
    species: ClassVar[type] = Species

    @classmethod
    def make(cls, incoming: Sequence[Any], outgoing: Sequence[Any]) -> Process:
        """``Process.make(["e", "e~"], ["mu", "mu~"])`` (species or their names)."""
        sp = [s if isinstance(s, cls.species) else cls.species.parse(s) for s in [*incoming, *outgoing]]
        n_in = len(incoming)
        return cls(tuple(Leg(s, k + 1, k < n_in) for k, s in enumerate(sp)))

    @classmethod
    def parse(cls, text: str) -> Process:
        """``"e e~ -> mu mu~"``."""
        if "->" not in text:
            raise ValueError(f"process {text!r} must look like 'a b -> c d' (e.g. 'e e~ -> mu mu~')")
        left, right = text.split("->")
        return cls.make(left.split(), right.split())

    @property
    def name(self) -> str:
        return process_name(list(self.legs))

    @property
    def shape(self) -> str:
        n_in = sum(l.incoming for l in self.legs)
        return f"{n_in}to{len(self.legs) - n_in}"

    def __str__(self) -> str:
        return self.name


def _conserves(incoming: Sequence[Species], outgoing: Sequence[Species]) -> bool:
    """QED conserves every fermion flavour number; a tree needs at least one fermion line."""
    count: Counter = Counter()
    for sign, group in ((1, incoming), (-1, outgoing)):
        for s in group:
            if s.particle.fermion:
                count[s.name] += sign * (-1 if s.anti else 1)
    n_fermions = sum(s.particle.fermion for s in [*incoming, *outgoing])
    return n_fermions > 0 and all(v == 0 for v in count.values())


def enumerate_processes(
    n_in: int, n_out: int, particles: Sequence[str] | None = None, max_fermion_lines: int | None = None
) -> list[Process]:
    """Every process ``n_in -> n_out`` of species in ``particles`` (default: the whole table) with
    tree-level QED diagrams; each multiset of incoming and outgoing species once, in a canonical
    order (species sorted within incoming and outgoing)."""
    species = sorted(all_species(list(particles) if particles else None))
    out = []
    for ins in itertools.combinations_with_replacement(species, n_in):
        for outs in itertools.combinations_with_replacement(species, n_out):
            if not _conserves(ins, outs):
                continue
            n_f = sum(s.particle.fermion for s in [*ins, *outs])
            if max_fermion_lines is not None and n_f // 2 > max_fermion_lines:
                continue
            proc = Process.make(ins, outs)
            if next(iter(diagrams(proc)), None) is not None:
                out.append(proc)
    return out


# ---------------------------------------------------------------------------- diagrams
def _incoming_momentum(leg: Leg) -> dict[int, int]:
    return {leg.p: 1 if leg.incoming else -1}


def _is_bar(leg: Leg) -> bool:
    """``ū`` (outgoing particle) or ``v̄`` (incoming antiparticle)."""
    return leg.incoming == leg.species.anti


@dataclass(frozen=True)
class Line:
    """A fermion line: external leg positions of its bar and unbar ends, and its photon slots
    from the bar end to the unbar end (``("x", leg position)`` external, ``("i", k)`` internal)."""

    bar: int
    unbar: int
    slots: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Diagram:
    """A tree-level QED Feynman diagram of ``process``."""

    process: Process
    lines: tuple[Line, ...]
    internal: tuple[tuple[int, int], ...]  # internal photon k joins lines internal[k]
    sign: int

    # -------------------------------------------------------------- momenta
    def _canonical(self, combo: dict[int, int]) -> Combo:
        """Eliminate the last momentum label with momentum conservation."""
        legs = self.process.legs
        last = legs[-1]
        c = combo.get(last.p, 0)
        if c:
            total = {l.p: (1 if l.incoming else -1) for l in legs}
            s = total[last.p]
            combo = {k: combo.get(k, 0) - c * s * total[k] for k in total}
        return tuple(sorted((k, v) for k, v in combo.items() if v))

    def photon_momentum(self, line: int, slot: tuple[str, int]) -> dict[int, int]:
        """Momentum flowing into ``line``'s vertex from the photon in ``slot``."""
        if slot[0] == "x":
            return _incoming_momentum(self.process.legs[slot[1]])
        # the legs on the far side of internal photon k, seen from `line`
        a, b = self.internal[slot[1]]
        far = b if a == line else a
        adjacency: dict[int, list[tuple[int, int]]] = {}
        for k, (u, w) in enumerate(self.internal):
            adjacency.setdefault(u, []).append((w, k))
            adjacency.setdefault(w, []).append((u, k))
        side, stack = {far}, [far]
        while stack:
            n = stack.pop()
            for w, k in adjacency.get(n, []):
                if k != slot[1] and w not in side:
                    side.add(w)
                    stack.append(w)
        total: dict[int, int] = {}
        for n in side:
            ln = self.lines[n]
            members = [ln.bar, ln.unbar] + [s[1] for s in ln.slots if s[0] == "x"]
            for pos in members:
                for k, v in _incoming_momentum(self.process.legs[pos]).items():
                    total[k] = total.get(k, 0) + v
        return total

    def fermion_propagators(self, line: int) -> list[Combo]:
        """Momenta (along the fermion arrow) of the propagators of ``line``, bar end first."""
        ln = self.lines[line]
        q = dict(_incoming_momentum(self.process.legs[ln.unbar]))
        out = []
        for slot in reversed(ln.slots[1:]):
            for k, v in self.photon_momentum(line, slot).items():
                q[k] = q.get(k, 0) + v
            out.append(self._canonical(q))
        return out[::-1]

    def photon_propagators(self) -> list[Combo]:
        """Momenta of the internal photons."""
        out = []
        for k, (a, _) in enumerate(self.internal):
            out.append(self._canonical(self.photon_momentum(a, ("i", k))))
        return out

    def line_flavour(self, line: int) -> str:
        return self.process.legs[self.lines[line].bar].species.name

    def charge_factor(self) -> Fraction:
        """Product of the vertex charges ``Q`` (in units of ``e``)."""
        q = Fraction(1)
        for i, ln in enumerate(self.lines):
            q *= particle(self.line_flavour(i)).charge ** len(ln.slots)
        return q

    @property
    def n_vertices(self) -> int:
        return sum(len(ln.slots) for ln in self.lines)

    def key(self) -> tuple:
        """Identity of the diagram, independent of how it was enumerated."""
        lines = []
        for i, ln in enumerate(self.lines):
            slots = []
            for s in ln.slots:
                if s[0] == "x":
                    slots.append(("x", self.process.legs[s[1]].p))
                else:
                    slots.append(("i", tuple(sorted(self.photon_momentum(i, s).items()))))
            lines.append((self.process.legs[ln.bar].p, self.process.legs[ln.unbar].p, tuple(slots)))
        return tuple(sorted(lines))


def combo_text(combo: Combo) -> str:
    """``((1, 1), (3, -1)) -> "p1-p3"``."""
    out = ""
    for k, v in combo:
        sign = "-" if v < 0 else ("+" if out else "")
        out += sign + ("" if abs(v) == 1 else str(abs(v))) + f"p{k}"
    return out or "0"


def permutation_sign(seq: Sequence[int]) -> int:
    """The sign (+1 or -1) of the permutation that sorts ``seq`` (distinct values): -1 per inversion."""
    sign, seq = 1, list(seq)
    for i in range(len(seq)):
        for j in range(i + 1, len(seq)):
            if seq[i] > seq[j]:
                sign = -sign
    return sign


def _spanning_trees(n: int) -> list[tuple[tuple[int, int], ...]]:
    """Every tree on nodes ``0..n-1`` as a tuple of edges (via Prüfer sequences)."""
    if n == 1:
        return [()]
    if n == 2:
        return [((0, 1),)]
    trees = []
    for seq in itertools.product(range(n), repeat=n - 2):
        degree = [1] * n
        for x in seq:
            degree[x] += 1
        edges = []
        for x in seq:
            leaf = min(i for i in range(n) if degree[i] == 1)
            edges.append((leaf, x))
            degree[leaf] -= 1
            degree[x] -= 1
        u, w = [i for i in range(n) if degree[i] == 1]
        edges.append((u, w))
        trees.append(tuple(edges))
    return trees


def diagrams(process: Process) -> Iterator[Diagram]:
    """Every tree-level QED diagram of ``process``."""
    legs = process.legs
    bars = [i for i, l in enumerate(legs) if l.species.particle.fermion and _is_bar(l)]
    unbars = [i for i, l in enumerate(legs) if l.species.particle.fermion and not _is_bar(l)]
    photons = [i for i, l in enumerate(legs) if not l.species.particle.fermion]
    if not bars or len(bars) != len(unbars):
        return
    fermion_order = sorted(bars + unbars, key=lambda i: legs[i].p)
    rank = {i: r for r, i in enumerate(fermion_order)}
    for perm in itertools.permutations(unbars):
        pairs = list(zip(bars, perm))
        if any(legs[b].species.name != legs[u].species.name for b, u in pairs):
            continue
        sign = permutation_sign([rank[x] for b, u in pairs for x in (b, u)])
        n_lines = len(pairs)
        for tree in _spanning_trees(n_lines):
            for assignment in itertools.product(range(n_lines), repeat=len(photons)):
                slot_sets: list[list[tuple[str, int]]] = [[] for _ in range(n_lines)]
                for k, (a, b) in enumerate(tree):
                    slot_sets[a].append(("i", k))
                    slot_sets[b].append(("i", k))
                for ph, line in zip(photons, assignment):
                    slot_sets[line].append(("x", ph))
                if any(not s for s in slot_sets):
                    continue
                for orders in itertools.product(*(itertools.permutations(s) for s in slot_sets)):
                    lines = tuple(Line(b, u, tuple(o)) for (b, u), o in zip(pairs, orders))
                    yield Diagram(process, lines, tuple(tree), sign)


# ---------------------------------------------------------------------------- symbols
def s_symbol(i: int, j: int) -> sympy.Symbol:
    """``s_ij`` with ``i <= j``."""
    i, j = sorted((i, j))
    return sympy.Symbol(f"s_{i}{j}")


E = sympy.Symbol("e")
REG_PROP = sympy.Symbol("reg_prop")


def _leg_mass(leg: Leg) -> sympy.Expr:
    return leg.species.particle.mass


def square_of(process: Process, combo: Combo) -> sympy.Expr:
    """``q²`` of a linear combination of momenta, in ``s_ij`` and masses (on shell)."""
    mass = {l.p: _leg_mass(l) for l in process.legs}
    out = sympy.Integer(0)
    for (i, a), (j, b) in itertools.product(combo, combo):
        out += a * b * (mass[i] ** 2 if i == j else s_symbol(i, j))
    return sympy.expand(out)


def denominator(diagram: Diagram, reg_prop: bool = False) -> sympy.Expr:
    """Product of the propagator denominators ``(q² - m²)`` and ``q²`` (``+ reg_prop`` if asked)."""
    proc = diagram.process
    reg = REG_PROP if reg_prop else 0
    out = sympy.Integer(1)
    for q in diagram.photon_propagators():
        out *= square_of(proc, q) + reg
    for i in range(len(diagram.lines)):
        m = particle(diagram.line_flavour(i)).mass
        for q in diagram.fermion_propagators(i):
            out *= square_of(proc, q) - m**2 + reg
    return out


# ---------------------------------------------------------------------------- squaring
def _vec(combo: Combo) -> str:
    return combo_text(combo)


def _line_factors(d: Diagram, line: int, tag: str, registry: dict[str, Combo]) -> list:
    """Dirac factors of a line from the bar end: ``γ^μ₁ (q̸₁+m) γ^μ₂ … γ^μₖ``."""
    ln = d.lines[line]
    mass = particle(d.line_flavour(line)).mass_name
    props = d.fermion_propagators(line)
    out = []
    for k, slot in enumerate(ln.slots):
        index = f"x{d.process.legs[slot[1]].p}" if slot[0] == "x" else f"{tag}{slot[1]}"
        out.append(dirac.gamma(index))
        if k < len(props):
            name = _vec(props[k])
            registry[name] = props[k]
            out.append(dirac.slash(name, mass, 1))
    return out


def spin_sum(leg: Leg) -> tuple:
    """``Σ_spins u ū = p̸ + m`` of an external fermion (``p̸ − m`` for an antifermion's ``v v̄``)."""
    return dirac.slash(f"p{leg.p}", leg.species.particle.mass_name, -1 if leg.species.anti else 1)


def _spin_sum(leg: Leg, registry: dict[str, Combo]) -> tuple:
    registry[f"p{leg.p}"] = ((leg.p, 1),)
    return spin_sum(leg)


def spin_chains(a_lines: Sequence[Any], b_lines: Sequence[Any]) -> Iterator[list[tuple[int, int, int, int]]]:
    """The closed spin chains of ``M_a M_b*``, each a trace: its steps ``(line of a, the leg at its
    unbarred end, line of b that ends there, the leg at that line's barred end)``, in the order the
    trace reads them (a's line from its bar end, the spin sum, b's line reversed, the spin sum)."""
    a_by_bar = {ln.bar: i for i, ln in enumerate(a_lines)}
    b_by_unbar = {ln.unbar: i for i, ln in enumerate(b_lines)}
    done: set[int] = set()
    for start in range(len(a_lines)):
        if start in done:
            continue
        chain, cur = [], start
        while True:
            done.add(cur)
            y = a_lines[cur].unbar
            lb = b_by_unbar[y]
            x = b_lines[lb].bar
            chain.append((cur, y, lb, x))
            cur = a_by_bar[x]
            if cur == start:
                break
        yield chain


def interference_poly(
    a: Diagram, b: Diagram, engine: dirac.TraceEngine | None = None, registry: dict[str, Combo] | None = None
) -> dirac.Poly:
    """``Σ_spins`` of the Dirac part of ``M_a M_b*``: a product of traces, all indices contracted."""
    engine = engine or dirac.TraceEngine()
    registry = {} if registry is None else registry
    legs = a.process.legs
    result: dirac.Poly = {(): 1}
    for chain in spin_chains(a.lines, b.lines):
        factors: list = []
        for la, y, lb, x in chain:
            factors += _line_factors(a, la, "a", registry)
            factors.append(_spin_sum(legs[y], registry))
            factors += _line_factors(b, lb, "b", registry)[::-1]
            factors.append(_spin_sum(legs[x], registry))
        result = dirac.poly_mul(result, engine.trace(factors))
    return result


def poly_to_sympy(poly: dirac.Poly, process: Process, registry: dict[str, Combo]) -> sympy.Expr:
    """An index-free polynomial as SymPy in ``s_ij`` and masses (on shell)."""
    mass = {l.p: _leg_mass(l) for l in process.legs}
    dot_cache: dict[tuple[str, str], sympy.Expr] = {}

    def dot(u: str, w: str) -> sympy.Expr:
        if (u, w) not in dot_cache:
            total = sympy.Integer(0)
            for (i, a), (j, b) in itertools.product(registry[u], registry[w]):
                total += a * b * (mass[i] ** 2 if i == j else s_symbol(i, j))
            dot_cache[(u, w)] = total
        return dot_cache[(u, w)]

    terms = []
    for mono, c in poly.items():
        factors = [sympy.Rational(c.numerator, c.denominator) if isinstance(c, Fraction) else sympy.Integer(c)]
        for atom in mono:
            if atom[0] == "d":
                factors.append(dot(atom[1], atom[2]))
            elif atom[0] == "m":
                factors.append(sympy.Symbol(atom[1]))
            else:
                raise ValueError(f"uncontracted Lorentz index in {atom}")
        terms.append(sympy.Mul(*factors))
    return sympy.expand(sympy.Add(*terms))


def average_factor(process: Process) -> sympy.Rational:
    """1/2 for every incoming fermion and photon (spin / polarization average)."""
    return sympy.Rational(1, 2 ** sum(l.incoming for l in process.legs))


def symmetry_factor(process: Process) -> sympy.Rational:
    """``1 / Π n_k!`` for ``n_k`` identical outgoing particles of each species (MARTY's convention)."""
    counts = Counter(l.species for l in process.legs if not l.incoming)
    out = sympy.Integer(1)
    for n in counts.values():
        out *= sympy.factorial(n)
    return 1 / out


def _prefactor(a: Diagram, b: Diagram, identical_factor: bool = False) -> sympy.Expr:
    proc = a.process
    sym = symmetry_factor(proc) if identical_factor else 1
    n_ext_photons = sum(not l.species.particle.fermion for l in proc.legs)
    q = a.charge_factor() * b.charge_factor()
    return (
        sym
        * average_factor(proc)
        * (-1) ** n_ext_photons
        * a.sign
        * b.sign
        * sympy.Rational(q.numerator, q.denominator)
        * E ** (a.n_vertices + b.n_vertices)
    )


def squared_pair(
    a: Diagram,
    b: Diagram,
    engine: dirac.TraceEngine | None = None,
    reg_prop: bool = False,
    identical_factor: bool = False,
) -> sympy.Expr:
    """Spin-summed and averaged ``M_a M_b*`` (real), unsimplified; ``identical_factor`` includes
    :func:`symmetry_factor` (as MARTY/SYMBA data do)."""
    registry: dict[str, Combo] = {}
    poly = interference_poly(a, b, engine, registry)
    numerator = poly_to_sympy(poly, a.process, registry)
    return _prefactor(a, b, identical_factor) * numerator / (denominator(a, reg_prop) * denominator(b, reg_prop))


def squared_diagram(
    d: Diagram, engine: dirac.TraceEngine | None = None, reg_prop: bool = False, identical_factor: bool = False
) -> sympy.Expr:
    """Spin-summed and averaged ``|M_d|²`` of one diagram, unsimplified."""
    return squared_pair(d, d, engine, reg_prop, identical_factor)


def squared_process(
    process: Process, engine: dirac.TraceEngine | None = None, reg_prop: bool = False, identical_factor: bool = False
) -> sympy.Expr:
    """``|Σ_d M_d|²`` summed/averaged over spins, interference included, unsimplified."""
    engine = engine or dirac.TraceEngine()
    return interference_sum(
        list(diagrams(process)), lambda a, b: squared_pair(a, b, engine, reg_prop, identical_factor)
    )


def interference_sum(amplitudes: Sequence[Any], pair: Callable[[Any, Any], sympy.Expr]) -> sympy.Expr:
    """``|Σ_d M_d|²`` from the pair terms ``pair(a, b)`` (the real part of ``M_a M_b*``):
    ``Σ_i pair(i, i) + 2 Σ_{i<j} pair(i, j)``."""
    total = sympy.Integer(0)
    for i, a in enumerate(amplitudes):
        for j in range(i, len(amplitudes)):
            term = pair(a, amplitudes[j])
            total += term if i == j else 2 * term
    return total


# ---------------------------------------------------------------------------- simplification
FACTOR_SEED = 0  # seed of SymPy's random generator for every factor call (see factor_with_timeout)


def factor_with_timeout(expr: sympy.Expr, seconds: float | None) -> tuple[sympy.Expr, bool]:
    """``(sympy.factor(expr), True)``, or ``(expr, False)`` after ``seconds`` of CPU time.

    The limit decides what the data holds (factored or expanded), so it counts CPU seconds of the
    process, whatever ``SYMLIT_TIME_LIMITS`` says: the same processes give the same rows on a busy
    machine as on an idle one. It is :func:`symlit.core.limits.time_limit` with ``clock="cpu"``: it
    applies in the main thread of a process (a worker process of :func:`generate`, or a script);
    elsewhere ``factor`` runs without a limit.

    SymPy's multivariate factoring (Wang's algorithm) draws random evaluation points from SymPy's
    global generator, seeded differently in every process: the result does not depend on them,
    but the work does, from one run to the next by orders of magnitude on the same expression. The
    generator is seeded with :data:`FACTOR_SEED` for the call (its state restored after), so the
    CPU time an expression needs, and whether it fits the limit, is the same in every run.
    """
    state = sympy_random.rng.getstate()
    sympy_random.rng.seed(FACTOR_SEED)
    try:
        with time_limit(seconds, clock="cpu") as token:
            return sympy.factor(expr), True
    except SampleTimeout as err:
        if owns(err, token):
            return expr, False
        raise
    finally:
        sympy_random.rng.setstate(state)


# ---------------------------------------------------------------------------- generation
@dataclass
class GeneratedRow:
    """One generated example: amplitude text, squared amplitude, and what produced it."""

    process: str
    diagram: int  # index among the process's diagrams; -1 for a whole-process row
    amp: str
    sqamp: sympy.Expr
    simplified: bool  # False when factor() ran out of CPU time (the row keeps the expanded form)
    seconds: float  # CPU seconds squaring and factoring took (a measurement: not the same in every run)


def generate_process(
    process: Process,
    level: str = "diagram",
    simplify_timeout: float | None = 10.0,
    reg_prop: bool = False,
    identical_factor: bool = True,
    engine: dirac.TraceEngine | None = None,
) -> list[GeneratedRow]:
    """Rows of one process: one per diagram (``level="diagram"``, as SYMBA) or one for the whole
    process (``level="process"``: the amplitude is the sum of the diagrams, ``|M|²`` with
    interference). ``simplify_timeout``: CPU seconds for ``factor`` per squared amplitude (a row
    that runs out keeps the expanded form, ``simplified=False``). ``identical_factor`` applies
    MARTY's 1/n! for identical final particles."""
    engine = engine or dirac.TraceEngine()
    return level_rows(
        level,
        diagrams(process),
        simplify_timeout,
        amplitude=lambda d: amplitude_text(d, reg_prop),
        square_diagram=lambda d: squared_diagram(d, engine, reg_prop, identical_factor),
        square_process=lambda: squared_process(process, engine, reg_prop, identical_factor),
        diagram_row=lambda k, d, amp, sq, ok, seconds: GeneratedRow(process.name, k, amp, sq, ok, seconds),
        process_row=lambda ds, amp, sq, ok, seconds: GeneratedRow(process.name, -1, amp, sq, ok, seconds),
    )


def level_rows(
    level: str,
    diagrams: Iterable[DiagramT],
    simplify_timeout: float | None,
    *,
    amplitude: Callable[[DiagramT], str],
    square_diagram: Callable[[DiagramT], sympy.Expr],
    square_process: Callable[[], sympy.Expr],
    diagram_row: Callable[[int, DiagramT, str, sympy.Expr, bool, float], RowT],
    process_row: Callable[[list[DiagramT], str, sympy.Expr, bool, float], RowT],
) -> list[RowT]:
    """The rows of one process whose diagrams are ``diagrams`` (QED and QCD rows), at ``level``:

    * ``"diagram"``: one row per diagram ``d`` (the ``k``-th), ``diagram_row(k, d, amplitude(d),
      sq, ok, seconds)`` where ``sq, ok, seconds`` is :func:`timed_square` of ``square_diagram(d)``;
    * ``"process"``: one row for the whole process, ``process_row(ds, amp, sq, ok, seconds)`` with
      the list of diagrams ``ds``, their amplitudes in parentheses joined by ``+``, and
      :func:`timed_square` of ``square_process()``; no row when the process has no diagram.

    ``ValueError`` for another level, before ``diagrams`` is read. A row's amplitude is written
    after its squared amplitude is computed."""
    if level not in ("diagram", "process"):
        raise ValueError(f"level={level!r} must be 'diagram' or 'process'")
    ds = list(diagrams)
    rows = []
    if level == "diagram":
        for k, d in enumerate(ds):
            sq, ok, seconds = timed_square(simplify_timeout, square_diagram, d)
            rows.append(diagram_row(k, d, amplitude(d), sq, ok, seconds))
    elif ds:
        sq, ok, seconds = timed_square(simplify_timeout, square_process)
        rows.append(process_row(ds, "+".join(f"({amplitude(d)})" for d in ds), sq, ok, seconds))
    return rows


def timed_square(
    seconds: float | None, square: Callable[..., sympy.Expr], *args: object
) -> tuple[sympy.Expr, bool, float]:
    """``square(*args)`` factored within ``seconds`` of CPU time (:func:`factor_with_timeout`): the
    squared amplitude, whether it was factored, and the CPU seconds computing and factoring it took
    (QED and QCD rows)."""
    t0 = time.process_time()
    sq, ok = factor_with_timeout(square(*args), seconds)
    return sq, ok, time.process_time() - t0


def _call(item: tuple[Callable[..., list], tuple]) -> list:
    function, args = item
    return function(*args)


def fork_pool(workers: int) -> mp.pool.Pool:
    """A pool of ``workers`` forked processes (spawned where fork does not exist), for the QED and
    QCD generators; each worker dies with this process (:func:`symlit.core.processes.die_with_parent`),
    even when it is killed."""
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    return ctx.Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),))


def run_processes(generate_one: Callable[..., list], jobs: list[tuple], workers: int, chunksize: int = 1) -> list:
    """The rows of ``generate_one(*job, engine)`` for every job, in order (QED and QCD generators):
    in this process with one trace engine (``workers <= 0``), or in ``workers`` forked processes
    (whose main thread makes the ``factor`` CPU-time limit effective)."""
    if workers <= 0:
        engine = dirac.TraceEngine()
        return [r for job in jobs for r in generate_one(*job, engine)]
    with fork_pool(workers) as pool:
        return [
            r for rows in pool.imap(_call, [(generate_one, job) for job in jobs], chunksize=chunksize) for r in rows
        ]


def generate(
    processes: Sequence[Process],
    level: str = "diagram",
    simplify_timeout: float | None = 10.0,
    reg_prop: bool = False,
    identical_factor: bool = True,
    workers: int = 0,
) -> list[GeneratedRow]:
    """Rows of every process, in order (:func:`generate_process`); ``workers > 0`` uses that many
    worker processes (whose main thread makes the ``factor`` CPU-time limit effective)."""
    jobs = [(p, level, simplify_timeout, reg_prop, identical_factor) for p in processes]
    return run_processes(generate_process, jobs, workers, chunksize=2)


def row_record(r: GeneratedRow) -> dict:
    """A row as JSON-ready fields, the squared amplitude as SYMBA text."""
    from symlit.qed.symba_format import sqamp_text

    return {
        "process": r.process,
        "diagram": r.diagram,
        "amp": r.amp,
        "sqamp": sqamp_text(r.sqamp),
        "simplified": r.simplified,
        "seconds": r.seconds,
    }


def generate_sharded(
    processes: Sequence[Process],
    out_dir: str,
    shard_size: int = 10,
    level: str = "diagram",
    simplify_timeout: float | None = 10.0,
    reg_prop: bool = False,
    identical_factor: bool = True,
    workers: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """:func:`generate` in shards of ``shard_size`` processes written to ``out_dir`` as
    ``shard-NNNNN.jsonl`` (each renamed into place when complete), so an interrupted run resumes
    from its finished shards and loses at most the shard in progress. Returns every row as a dict
    (``process diagram amp sqamp simplified seconds``, ``sqamp`` as SYMBA text). ``out_dir`` must
    belong to one list of processes and settings: a ``meta.json`` there refuses another."""
    import json
    import os
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "processes": [p.name for p in processes],
        "shard_size": shard_size,
        "level": level,
        "simplify_timeout": simplify_timeout,
        "reg_prop": reg_prop,
        "identical_factor": identical_factor,
    }
    meta_path = out / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) != meta:
        raise ValueError(f"{out} holds shards of other processes or settings; use another directory")
    meta_path.write_text(json.dumps(meta))
    chunks = [processes[i : i + shard_size] for i in range(0, len(processes), shard_size)]
    pool = None
    if workers > 0:
        pool = fork_pool(workers)
    engine = dirac.TraceEngine()
    try:
        for k, chunk in enumerate(chunks):
            path = out / f"shard-{k:05d}.jsonl"
            if path.exists():
                continue
            jobs = [(p, level, simplify_timeout, reg_prop, identical_factor) for p in chunk]
            if pool is None:
                rows = [r for job in jobs for r in generate_process(*job, engine=engine)]
            else:
                rows = [r for rs in pool.imap(_call, [(generate_process, job) for job in jobs]) for r in rs]
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text("".join(json.dumps(row_record(r)) + "\n" for r in rows))
            os.replace(tmp, path)
            if log:
                log(f"shard {k + 1}/{len(chunks)}: {len(chunk)} processes, {len(rows)} rows")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return [
        json.loads(line) for k in range(len(chunks)) for line in (out / f"shard-{k:05d}.jsonl").read_text().splitlines()
    ]
