"""SU(N) colour algebra (symlit.qcd.colour): the identities on explicit matrices, and the symbolic
reduction against brute-force sums over explicit generators for N = 2, 3, 4."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from symlit.qcd import colour
from symlit.qcd.colour import (
    CA,
    CF,
    N,
    colour_sum,
    conjugate,
    generators,
    structure_constants,
)

ONE = sympy.Integer(1)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_generator_identities(n: int) -> None:
    t, f = generators(n), structure_constants(n)
    dim = n * n - 1
    assert t.shape == (dim, n, n)
    assert np.allclose(t, t.conj().transpose(0, 2, 1)) and np.allclose(np.einsum("aii->a", t), 0)
    # Tr(T^a T^b) = δ^{ab}/2
    assert np.allclose(np.einsum("aij,bji->ab", t, t), np.eye(dim) / 2)
    # T^a T^a = C_F 1
    assert np.allclose(np.einsum("aij,ajk->ik", t, t), float(CF.subs(N, n)) * np.eye(n))
    # [T^a, T^b] = i f^{abc} T^c, f totally antisymmetric
    comm = np.einsum("aij,bjk->abik", t, t) - np.einsum("bij,ajk->abik", t, t)
    assert np.allclose(comm, 1j * np.einsum("abc,cik->abik", f, t))
    assert np.allclose(f, -f.transpose(1, 0, 2)) and np.allclose(f, -f.transpose(0, 2, 1))
    # f^{acd} f^{bcd} = C_A δ^{ab}
    assert np.allclose(np.einsum("acd,bcd->ab", f, f), float(CA.subs(N, n)) * np.eye(dim))
    # Fierz: T^a_{ij} T^a_{kl} = (δ_il δ_kj - δ_ij δ_kl / N) / 2
    d = np.eye(n)
    fierz = 0.5 * (np.einsum("il,kj->ijkl", d, d) - np.einsum("ij,kl->ijkl", d, d) / n)
    assert np.allclose(np.einsum("aij,akl->ijkl", t, t), fierz)


def brute_force(objs: tuple, n: int) -> complex:
    """Σ over every index of a product of colour objects, with explicit matrices."""
    t, f = generators(n), structure_constants(n)
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    names: dict[str, str] = {}
    specs, ops = [], []
    for o in objs:
        idx = "".join(names.setdefault(x, next(letters)) for x in o[1:])
        specs.append(idx)
        ops.append({"T": t, "f": f, "d": np.eye(n), "D": np.eye(n * n - 1)}[o[0]])
    return complex(np.einsum(",".join(specs) + "->", *ops))


STRUCTURES = [
    (("T", "a", "i", "j"), ("T", "b", "j", "i"), ("D", "a", "b")),  # Tr(T^a T^b) δ^{ab}
    (("T", "a", "i", "j"), ("T", "a", "j", "i")),  # Tr(C_F 1)
    (("f", "a", "c", "d"), ("f", "b", "c", "d"), ("D", "a", "b")),  # C_A (N²-1)
    (("T", "a", "i", "j"), ("T", "a", "k", "l"), ("T", "b", "j", "i"), ("T", "b", "l", "k")),
    (("T", "a", "i", "j"), ("T", "a", "k", "l"), ("T", "b", "l", "i"), ("T", "b", "j", "k")),
    (("T", "a", "i", "j"), ("T", "b", "j", "k"), ("T", "b", "k", "l"), ("T", "a", "l", "i")),
    (("T", "a", "i", "j"), ("T", "b", "j", "k"), ("T", "a", "k", "l"), ("T", "b", "l", "i")),
    (("f", "a", "b", "c"), ("T", "c", "i", "j"), ("T", "a", "j", "k"), ("T", "b", "k", "i")),
    (("f", "a", "b", "e"), ("f", "c", "d", "e"), ("f", "a", "c", "x"), ("f", "b", "d", "x")),
    (("f", "a", "b", "e"), ("f", "c", "d", "e"), ("f", "a", "b", "x"), ("f", "c", "d", "x")),
    (("d", "i", "j"), ("d", "j", "i"), ("D", "a", "a")),
]


@pytest.mark.parametrize("objs", STRUCTURES)
@pytest.mark.parametrize("n", [2, 3, 4])
def test_reduction_matches_brute_force(objs: tuple, n: int) -> None:
    got = colour_sum([(ONE, objs)], n=n)
    assert complex(got) == pytest.approx(brute_force(objs, n), abs=1e-9)


def test_symbolic_values() -> None:
    assert sympy.simplify(colour_sum([(ONE, STRUCTURES[0])]) - (N**2 - 1) / 2) == 0
    assert sympy.simplify(colour_sum([(ONE, STRUCTURES[1])]) - CF * N) == 0
    assert sympy.simplify(colour_sum([(ONE, STRUCTURES[2])]) - CA * (N**2 - 1)) == 0


def test_conjugate_transposes_generators() -> None:
    term = [(sympy.I, (("T", "a", "i", "j"), ("f", "a", "b", "c")))]
    assert conjugate(term) == [(-sympy.I, (("T", "a", "j", "i"), ("f", "a", "b", "c")))]
    # |T^a_{ij} T^a_{kl}|² summed = (N² - 1)/4 (q q~ -> q' q~' by one gluon)
    amp = [(ONE, (("T", "a", "i", "j"), ("T", "a", "k", "l")))]
    assert (
        sympy.simplify(
            colour_sum(amp, conjugate([(ONE, (("T", "b", "i", "j"), ("T", "b", "k", "l")))])) - (N**2 - 1) / 4
        )
        == 0
    )


def test_unpaired_index_is_an_error() -> None:
    with pytest.raises(ValueError, match="exactly twice"):
        colour_sum([(ONE, (("T", "a", "i", "j"),))])


def test_brute_force_helper_sees_every_index() -> None:
    # guard against a vacuous brute force: a non-trivial structure is not its own negative
    for objs in STRUCTURES[:3]:
        assert abs(brute_force(objs, 3)) > 0.1
    assert colour.generators(2)[0].shape == (2, 2)
