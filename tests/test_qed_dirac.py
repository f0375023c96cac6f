"""Our Dirac trace engine against known identities (4 dimensions, metric +---)."""

from __future__ import annotations

import itertools

from symlit.qed.dirac import TraceEngine, contract, gamma, poly_mul, slash, trace


def test_trace_of_identity_and_two_slashes():
    assert trace([]) == {(): 4}
    assert trace([slash("a"), slash("b")]) == {(("d", "a", "b"),): 4}


def test_odd_traces_vanish():
    for n in (1, 3, 5, 7):
        assert trace([slash(f"p{k}") for k in range(n)]) == {}
    assert trace([gamma("mu"), slash("a"), gamma("nu")]) == {}
    # with a mass only the even part survives: Tr[γ^μ (a̸ + m) γ^ν] = 4 m g^{μν}
    assert trace([gamma("mu"), slash("a", "m"), gamma("nu")]) == {(("g", "mu", "nu"), ("m", "m")): 4}


def test_four_gammas():
    assert trace([gamma("m"), gamma("n"), gamma("r"), gamma("s")]) == {
        (("g", "m", "n"), ("g", "r", "s")): 4,
        (("g", "m", "r"), ("g", "n", "s")): -4,
        (("g", "m", "s"), ("g", "n", "r")): 4,
    }


def test_cyclicity_and_reversal():
    items = [slash("a"), slash("b"), slash("c"), slash("d"), slash("e"), slash("f")]
    t = trace(items)
    for k in range(len(items)):
        assert trace(items[k:] + items[:k]) == t
    assert trace(items[::-1]) == t  # Tr[a1...an] = Tr[an...a1]


def test_contractions_in_four_dimensions():
    engine = TraceEngine()
    assert engine.trace([gamma("mu"), gamma("mu")]) == {(): 16}
    assert engine.trace([gamma("mu"), slash("a"), gamma("mu"), slash("b")]) == {(("d", "a", "b"),): -8}
    assert engine.trace([gamma("mu"), slash("a"), slash("b"), gamma("mu")]) == {(("d", "a", "b"),): 16}
    # gamma^mu a b c gamma_mu = -2 c b a
    lhs = engine.trace([gamma("mu"), slash("a"), slash("b"), slash("c"), gamma("mu"), slash("d")])
    rhs = {m: -2 * c for m, c in engine.trace([slash("c"), slash("b"), slash("a"), slash("d")]).items()}
    assert lhs == rhs
    # contracting the free indices of Tr[g g g g] by hand: g^m_m g^r_r ... = 4 * (16 - 4 + 16)
    four = trace([gamma("m"), gamma("n"), gamma("m"), gamma("n")])
    assert four == {(): -32}


def test_no_antisymmetry_bug_with_masses():
    """SymPy's gamma_trace gave an antisymmetric Tr[p2 γ^μ p1 γ^ν] for sums like (p-m): ours is symmetric."""
    for s2, s1 in itertools.product((1, -1), repeat=2):
        t = trace([slash("p2", "M", s2), gamma("mu"), slash("p1", "M", s1), gamma("nu")])
        swapped = trace([slash("p2", "M", s2), gamma("nu"), slash("p1", "M", s1), gamma("mu")])
        assert t == swapped
        expected = {
            (("v", "p1", "nu"), ("v", "p2", "mu")): 4,
            (("v", "p1", "mu"), ("v", "p2", "nu")): 4,
            (("d", "p1", "p2"), ("g", "mu", "nu")): -4,
            (("g", "mu", "nu"), ("m", "M"), ("m", "M")): 4 * s1 * s2,
        }
        assert t == expected


def test_cross_trace_contraction_gives_the_textbook_tensor_product():
    t1 = trace([slash("p3", "m"), gamma("mu"), slash("p1", "m"), gamma("nu")])
    t2 = trace([slash("p4", "M"), gamma("mu"), slash("p2", "M"), gamma("nu")])
    assert poly_mul(t1, t2) == {
        (("d", "p1", "p2"), ("d", "p3", "p4")): 32,
        (("d", "p1", "p4"), ("d", "p2", "p3")): 32,
        (("d", "p1", "p3"), ("m", "M"), ("m", "M")): -32,
        (("d", "p2", "p4"), ("m", "m"), ("m", "m")): -32,
        (("m", "M"), ("m", "M"), ("m", "m"), ("m", "m")): 64,
    }
    assert contract({(("g", "a", "b"), ("g", "a", "b")): 1}) == {(): 4}
    assert contract({(("g", "a", "b"), ("v", "p", "a"), ("v", "q", "b")): 1}) == {(("d", "p", "q"),): 1}
