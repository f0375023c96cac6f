"""Canonical keys of QED diagrams (symlit.qed.keys): the three levels and what they identify."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from symlit.qed import generator as gen
from symlit.qed import symba_format as sf
from symlit.qed.diagram_text import topology
from symlit.qed.keys import amplitude_keys, generated_keys
from symlit.qed.particles import Species
from symlit.tasks.qed import process_key

pytestmark = pytest.mark.xdist_group("test_qed_keys")  # pytest-xdist: the module-scoped fixture is built once

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "symba-qed-2to2" / "valid.csv"


def conjugate(process: gen.Process) -> gen.Process:
    legs = process.legs
    flip = [Species(l.species.name, not l.species.anti) for l in legs]
    return gen.Process.make(
        [s for s, l in zip(flip, legs) if l.incoming], [s for s, l in zip(flip, legs) if not l.incoming]
    )


@pytest.fixture(scope="module")
def all_2to2():
    procs = gen.enumerate_processes(2, 2)
    return {p: [(d, generated_keys(d)) for d in gen.diagrams(p)] for p in procs}


def test_relabelled_momenta_share_the_class_not_the_labelled_key():
    rows = sf.read_symba_file(str(SAMPLE))
    for amp, _ in rows[:: len(rows) // 25]:  # 26 MARTY diagrams of many processes
        base = amplitude_keys(sf.parse(amp))
        legs = sf.legs(sf.parse(amp))
        for perm in itertools.permutations(range(1, 5)):
            mapping = dict(zip(range(1, 5), perm))
            moved = amplitude_keys(sf.parse(sf.relabel_momenta(amp, mapping)))
            assert moved["diagram_class"] == base["diagram_class"] and moved["process"] == base["process"]
            # a relabelling that moves a leg onto one of another species or direction is another labelled diagram
            kind = {l.p: (l.species, l.incoming) for l in legs}
            if any(kind[i] != kind[mapping[i]] for i in kind):
                assert moved["diagram"] != base["diagram"]
    # the same process written with its legs in another order
    a = gen.Process.make(["e", "e~"], ["mu", "mu~"])
    b = gen.Process.make(["e~", "e"], ["mu~", "mu"])
    (ka,), (kb,) = [[generated_keys(d) for d in gen.diagrams(p)] for p in (a, b)]
    assert ka["diagram"] != kb["diagram"] and ka["diagram_class"] == kb["diagram_class"]


@pytest.mark.parametrize("process", ["e e~ -> A A", "e e -> e e", "e~ e~ -> e~ e~", "A A -> mu mu~"])
def test_swapped_identical_particles_share_the_class(process):
    ds = list(gen.diagrams(gen.Process.parse(process)))
    ks = [generated_keys(d) for d in ds]
    assert len({k["diagram"] for k in ks}) == len(ds) == 2  # two labelled diagrams (t and u channel)
    assert len({k["diagram_class"] for k in ks}) == 1  # one diagram up to swapping the identical particles


def test_charge_conjugated_processes_share_the_family_and_no_class(all_2to2):
    family = {p: {k["diagram_family"] for _, k in ds} for p, ds in all_2to2.items()}
    classes = {p: {k["diagram_class"] for _, k in ds} for p, ds in all_2to2.items()}
    by_name = {process_key(list(p.legs)): p for p in all_2to2}
    n_pairs = 0
    for p in all_2to2:
        c = by_name[process_key(list(conjugate(p).legs))]
        assert family[p] == family[c]
        if c != p:
            assert not classes[p] & classes[c]
            n_pairs += 1
    assert n_pairs > 100


def _relabelled_topology(d: gen.Diagram, perm: dict[int, int]) -> tuple:
    out = []
    for bar, unbar, slots in topology(d):
        new = tuple(("x", perm[w]) if k == "x" else ("i", (perm[w[0]], perm[w[1]])) for k, w in slots)
        out.append((perm[bar], perm[unbar], new))
    return tuple(sorted(out))


def test_different_diagrams_have_different_keys_over_every_2to2_diagram(all_2to2):
    every = [(p, d, k) for p, ds in all_2to2.items() for d, k in ds]
    assert len(every) == 342
    assert len({k["diagram"] for _, _, k in every}) == 342  # every labelled diagram its own key
    classes: dict[str, gen.Process] = {}
    for p, ds in all_2to2.items():
        for _, k in ds:
            assert classes.setdefault(k["diagram_class"], p) == p  # no class shared by two processes
        # within a process: one class exactly when a swap of identical legs maps one diagram onto the other
        legs = p.legs
        swaps = [
            dict(zip([l.p for l in legs], perm))
            for perm in itertools.permutations([l.p for l in legs])
            if all(
                (legs[i].species, legs[i].incoming) == (legs[j - 1].species, legs[j - 1].incoming)
                for i, j in enumerate(perm)
            )
        ]
        for (d1, k1), (d2, k2) in itertools.combinations(ds, 2):
            related = any(_relabelled_topology(d1, s) == topology(d2) for s in swaps)
            assert (k1["diagram_class"] == k2["diagram_class"]) == related, (p.name, topology(d1), topology(d2))


def test_keys_read_back_from_tokens_in_every_notation():
    for amp, _ in sf.read_symba_file(str(SAMPLE))[:150]:
        tree = sf.parse(amp)
        want = amplitude_keys(tree)
        for notation in ("prefix", "hybrid", "hybrid_short"):
            assert amplitude_keys(sf.parse_tokens(sf.amplitude_tokens(tree, notation))) == want


def test_marty_rows_share_keys_with_the_generator_diagram():
    """The key of a MARTY amplitude is the key of the generator's diagram it is (same process order)."""
    for amp, _ in sf.read_symba_file(str(SAMPLE))[:60]:
        tree = sf.parse(amp)
        legs = sf.legs(tree)
        proc = gen.Process(tuple(legs))
        want = amplitude_keys(tree)["diagram"]
        assert sum(generated_keys(d)["diagram"] == want for d in gen.diagrams(proc)) == 1


def test_keys_do_not_depend_on_how_a_graph_is_listed(all_2to2):
    """The generic API: edges in any order, either direction, vertices numbered anyhow."""
    import random

    from symlit.qed.keys import Edge, ExternalLeg, FeynmanGraph, keys, qed_graph

    rng = random.Random(0)
    for p, ds in list(all_2to2.items())[::7]:
        for d, _ in ds:
            legs = [ExternalLeg(l.p, str(l.species), l.incoming) for l in p.legs]
            g = qed_graph(legs, topology(d))
            vertices = sorted({n for e in g.edges for n in (e.a, e.b) if n[0] == "v"})
            renumber = dict(zip(vertices, rng.sample(vertices, len(vertices))))
            edges = []
            for e in rng.sample(list(g.edges), len(g.edges)):
                a, b = renumber.get(e.a, e.a), renumber.get(e.b, e.b)
                flip = rng.random() < 0.5
                edges.append(
                    Edge(b, a, e.field, None if e.arrow is None else not e.arrow)
                    if flip
                    else Edge(a, b, e.field, e.arrow)
                )
            listed = FeynmanGraph(tuple(rng.sample(legs, len(legs))), tuple(edges))
            assert keys(listed) == keys(g)
