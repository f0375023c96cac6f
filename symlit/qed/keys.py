"""Canonical keys of tree-level Feynman diagrams, at three levels of identity.

A diagram is described as a :class:`FeynmanGraph`: external legs (a momentum label, a species
and a direction) and edges between legs and internal vertices, each edge carrying a field name
and, for fermions, the direction of the fermion-number arrow. Nothing here is QED-specific: any
tree-level theory (QCD's gluon vertices included) fits, and :func:`keys` works on any such graph.

Three keys, coarser and coarser (:data:`LEVELS`):

``diagram``
    The labelled diagram: which leg carries which momentum label. Two rows with this key equal
    have the same squared-amplitude *function* of the ``s_ij`` (MARTY writes one diagram in
    several forms: on-shell or not, factors reordered; they all share this key).
``diagram_class``
    The diagram up to relabelling its momenta, which includes swapping identical particles
    (the t- and u-channel diagrams of ``e e~ -> A A`` are one class).
``diagram_family``
    The class up to charge conjugation as well (every fermion replaced by its antiparticle, and
    every fermion arrow reversed): ``e e~ -> mu mu~`` and ``e~ e -> mu~ mu`` are one family.

The class key is an exact canonical form of a tree (all rootings tried, children sorted), so two
graphs share it if and only if they are isomorphic with species and directions kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

LEVELS: tuple[str, ...] = ("diagram", "diagram_class", "diagram_family")


@dataclass(frozen=True)
class ExternalLeg:
    """An external line: momentum ``label``, ``species`` (``"e~"``: antiparticle) and direction."""

    label: int
    species: str
    incoming: bool


@dataclass(frozen=True)
class Edge:
    """A line between nodes ``a`` and ``b`` (``("leg", label)`` or ``("v", k)``) carrying
    ``field``; ``arrow`` is True when the fermion-number arrow runs from ``a`` to ``b`` (fermions),
    None for fields without an arrow (photons, gluons)."""

    a: tuple[str, int]
    b: tuple[str, int]
    field: str
    arrow: bool | None = None


@dataclass(frozen=True)
class FeynmanGraph:
    """External legs and edges of one tree-level diagram."""

    legs: tuple[ExternalLeg, ...]
    edges: tuple[Edge, ...]

    def conjugate(self, anti: Callable[[str], str] | None = None) -> FeynmanGraph:
        """Charge conjugate: species replaced by ``anti(species)`` (default: toggle a trailing
        ``~`` on species whose edges carry an arrow), every arrow reversed."""
        fermions = {e.field for e in self.edges if e.arrow is not None}

        def toggle(s: str) -> str:
            base = s.rstrip("~")
            if base not in fermions:
                return s
            return base if s.endswith("~") else base + "~"

        anti = anti or toggle
        legs = tuple(ExternalLeg(l.label, anti(l.species), l.incoming) for l in self.legs)
        edges = tuple(Edge(e.a, e.b, e.field, None if e.arrow is None else not e.arrow) for e in self.edges)
        return FeynmanGraph(legs, edges)


def _canonical(graph: FeynmanGraph, with_labels: bool) -> str:
    """Minimum over rootings of the sorted nested encoding of the tree (AHU)."""
    leg_of = {("leg", l.label): l for l in graph.legs}
    adjacency: dict[tuple[str, int], list[tuple[tuple[str, int], str]]] = {}
    for e in graph.edges:
        out_ab = "" if e.arrow is None else (">" if e.arrow else "<")
        out_ba = "" if e.arrow is None else ("<" if e.arrow else ">")
        adjacency.setdefault(e.a, []).append((e.b, e.field + out_ab))
        adjacency.setdefault(e.b, []).append((e.a, e.field + out_ba))

    def label(node: tuple[str, int]) -> str:
        if node[0] != "leg":
            return "v"
        leg = leg_of[node]
        text = f"{'in' if leg.incoming else 'out'}:{leg.species}"
        return f"{text}@p{leg.label}" if with_labels else text

    def encode(node: tuple[str, int], parent: tuple[str, int] | None) -> str:
        children = sorted(f"{edge}{encode(child, node)}" for child, edge in adjacency.get(node, []) if child != parent)
        return label(node) + ("(" + ",".join(children) + ")" if children else "")

    roots = [n for n in adjacency if n[0] != "leg"] or list(adjacency)
    return min(encode(r, None) for r in roots)


def keys(graph: FeynmanGraph, anti: Callable[[str], str] | None = None) -> dict[str, str]:
    """The three keys of :data:`LEVELS` of a diagram."""
    cls = _canonical(graph, with_labels=False)
    return {
        "diagram": _canonical(graph, with_labels=True),
        "diagram_class": cls,
        "diagram_family": min(cls, _canonical(graph.conjugate(anti), with_labels=False)),
    }


def process_keys(legs: Sequence[ExternalLeg], anti: Callable[[str], str] | None = None) -> dict[str, str]:
    """``process``: incoming and outgoing species as multisets (``"e e~ -> mu mu~"``);
    ``process_family``: the same up to charge conjugation (``anti`` maps a species to its
    antiparticle; the default toggles a trailing ``~``, so pass ``anti`` when some species are
    their own antiparticle, as :func:`qed_keys` does for the photon)."""

    def toggle(s: str) -> str:
        return s[:-1] if s.endswith("~") else s + "~"

    def name(ls: Sequence[ExternalLeg], f: Callable[[str], str]) -> str:
        ins = sorted(f(l.species) for l in ls if l.incoming)
        outs = sorted(f(l.species) for l in ls if not l.incoming)
        return f"{' '.join(ins)} -> {' '.join(outs)}"

    plain = name(legs, lambda s: s)
    return {"process": plain, "process_family": min(plain, name(legs, anti or toggle))}


# ---------------------------------------------------------------------------- QED topologies
def qed_graph(legs: Sequence[ExternalLeg], topology: Sequence[tuple]) -> FeynmanGraph:
    """The graph of a QED diagram given as a :func:`symlit.qed.diagram_text.topology`: fermion lines
    ``(bar label, unbar label, slots)`` with slots ``("x", label)`` (an external photon) or
    ``("i", (bar, unbar))`` (an internal photon to that line), in order from the bar end.

    Fermion number flows from the unbar end (``u``, ``v``) to the bar end (``ū``, ``v̄``)."""
    species = {l.label: l.species for l in legs}
    edges: list[Edge] = []
    vertex_of: dict[tuple[tuple[int, int], int], tuple[str, int]] = {}  # (line ends, slot) -> vertex
    counter = 0
    for bar, unbar, slots in topology:
        flavour = species[bar].rstrip("~")
        if not slots:
            raise ValueError(f"fermion line p_{bar}..p_{unbar} has no vertex")
        vertices = []
        for k in range(len(slots)):
            vertices.append(("v", counter))
            vertex_of[((bar, unbar), k)] = ("v", counter)
            counter += 1
        # arrow: unbar leg -> last vertex -> ... -> first vertex -> bar leg
        edges.append(Edge(vertices[0], ("leg", bar), flavour, True))
        for a, b in zip(vertices[1:], vertices[:-1]):
            edges.append(Edge(a, b, flavour, True))
        edges.append(Edge(("leg", unbar), vertices[-1], flavour, True))
    seen: set[frozenset] = set()
    for bar, unbar, slots in topology:
        for k, (kind, what) in enumerate(slots):
            here = vertex_of[((bar, unbar), k)]
            if kind == "x":
                edges.append(Edge(here, ("leg", what), "A"))
                continue
            pair = frozenset([(bar, unbar), tuple(what)])
            if pair in seen:
                continue
            seen.add(pair)
            other = next((s for s in topology if (s[0], s[1]) == tuple(what)), None)
            if other is None:
                raise ValueError(f"internal photon to an unknown line {what}")
            j = next(i for i, sl in enumerate(other[2]) if sl == ("i", (bar, unbar)))
            edges.append(Edge(here, vertex_of[(tuple(what), j)], "A"))
    return FeynmanGraph(tuple(legs), tuple(edges))


def qed_keys(legs: Sequence[ExternalLeg], topology: Sequence[tuple]) -> dict[str, str]:
    """Every key of a QED diagram: the three diagram :data:`LEVELS`, ``process`` and ``process_family``."""
    photon = {l.species for l in legs if l.species.rstrip("~") == "A"}
    anti = lambda s: s if s in photon else (s[:-1] if s.endswith("~") else s + "~")
    return {**keys(qed_graph(legs, topology), anti), **process_keys(legs, anti)}


def generated_keys(diagram) -> dict[str, str]:
    """The keys of a diagram of symlit's generator."""
    from symlit.qed.diagram_text import topology

    legs = [ExternalLeg(l.p, str(l.species), l.incoming) for l in diagram.process.legs]
    return qed_keys(legs, topology(diagram))


def amplitude_keys(tree: tuple) -> dict[str, str]:
    """The keys of an amplitude parse tree (:func:`symlit.qed.symba_format.parse`, or
    :func:`~symlit.qed.symba_format.parse_tokens` of its tokens): the diagram is read back from
    the index structure of the spinor chains (:func:`symlit.qed.diagram_text.amplitude_topology`)."""
    from symlit.qed.diagram_text import amplitude_topology
    from symlit.qed.symba_format import legs as tree_legs

    legs = [ExternalLeg(l.p, str(l.species), l.incoming) for l in tree_legs(tree)]
    return qed_keys(legs, amplitude_topology(tree))


__all__ = [
    "LEVELS",
    "Edge",
    "ExternalLeg",
    "FeynmanGraph",
    "amplitude_keys",
    "generated_keys",
    "keys",
    "process_keys",
    "qed_graph",
    "qed_keys",
]
