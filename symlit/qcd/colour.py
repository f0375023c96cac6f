"""SU(N) colour algebra: colour factors of amplitudes and their colour sums, N symbolic or a number.

A colour factor is a sum of :data:`Term` ``(coefficient, objects)``; the objects are

* ``("T", a, i, j)``: the generator ``(T^a)_{ij}`` in the fundamental representation,
  normalised ``Tr(T^a T^b) = δ^{ab}/2``;
* ``("f", a, b, c)``: the structure constant ``f^{abc}`` (``[T^a, T^b] = i f^{abc} T^c``);
* ``("d", i, j)``: ``δ_{ij}`` (fundamental), ``("D", a, b)``: ``δ^{ab}`` (adjoint).

:func:`colour_sum` sums a product of factors over every index (each index must occur exactly
twice) and returns a SymPy expression in ``N`` (the number of colours). The reduction uses, in order:
``δ`` contraction (``δ_{ii} = N``, ``δ^{aa} = N² − 1``), ``Tr T^a = 0``, the Casimirs
``(T^a T^a)_{ik} = C_F δ_{ik}`` and ``f^{acd} f^{bcd} = C_A δ^{ab}``, then
``f^{abc} = −2i Tr([T^a, T^b] T^c)`` and the Fierz identity
``T^a_{ij} T^a_{kl} = ½ (δ_{il} δ_{kj} − δ_{ij} δ_{kl} / N)`` until only numbers are left
(the "birdtrack" algorithm, e.g. Cvitanović, *Group Theory*, ch. 9).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence

import sympy

N = sympy.Symbol("N", positive=True)
CF = (N**2 - 1) / (2 * N)  # quadratic Casimir of the fundamental representation
CA = N  # quadratic Casimir of the adjoint representation
TF = sympy.Rational(1, 2)  # Tr(T^a T^b) = T_F δ^{ab}

Obj = tuple
Term = tuple  # (sympy coefficient, tuple of objects)


def conjugate(terms: Iterable[Term]) -> list[Term]:
    """The complex conjugate: ``(T^a_{ij})* = T^a_{ji}``; ``f`` and ``δ`` are real."""
    out = []
    for c, objs in terms:
        out.append((sympy.conjugate(c), tuple(("T", o[1], o[3], o[2]) if o[0] == "T" else o for o in objs)))
    return out


def product(*factors: Sequence[Term]) -> list[Term]:
    """The expanded product of colour factors."""
    out = []
    for choice in itertools.product(*factors):
        c = sympy.Integer(1)
        objs: tuple = ()
        for ci, oi in choice:
            c *= ci
            objs += tuple(oi)
        out.append((c, objs))
    return out


def _rename(objs: tuple, old: str, new: str) -> tuple:
    return tuple((o[0], *(new if x == old else x for x in o[1:])) for o in objs)


def _perm_sign(seq: Sequence[str], target: Sequence[str]) -> int:
    """Sign of the permutation taking ``target`` to ``seq`` (both without repeats)."""
    pos = [list(target).index(x) for x in seq]
    sign = 1
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            if pos[i] > pos[j]:
                sign = -sign
    return sign


class _Fresh:
    def __init__(self) -> None:
        self.k = 0

    def __call__(self) -> str:
        self.k += 1
        return f"_c{self.k}"


def _reduce(objs: tuple, fresh: _Fresh) -> sympy.Expr:
    """Σ over every index of the product ``objs`` (each index occurs exactly twice)."""
    objs = tuple(objs)
    # 1. deltas
    for k, o in enumerate(objs):
        if o[0] in ("d", "D"):
            rest = objs[:k] + objs[k + 1 :]
            if o[1] == o[2]:
                return (N if o[0] == "d" else N**2 - 1) * _reduce(rest, fresh)
            return _reduce(_rename(rest, o[2], o[1]), fresh)
    ts = [o for o in objs if o[0] == "T"]
    fs = [o for o in objs if o[0] == "f"]
    # 2. Tr T^a = 0, f^{aab} = 0
    if any(t[2] == t[3] for t in ts) or any(len(set(f[1:])) < 3 for f in fs):
        return sympy.Integer(0)
    # 3. C_F: (T^a T^a)_{ik} = C_F δ_{ik}
    for t1, t2 in itertools.permutations(ts, 2):
        if t1[1] == t2[1] and t1[3] == t2[2]:
            rest = list(objs)
            rest.remove(t1)
            rest.remove(t2)
            return CF * _reduce((*rest, ("d", t1[2], t2[3])), fresh)
    # 4. C_A: f^{acd} f^{bcd} = C_A δ^{ab}
    for f1, f2 in itertools.combinations(fs, 2):
        shared = [x for x in f1[1:] if x in f2[1:]]
        if len(shared) >= 2:
            c, d = shared[:2]
            a = next(x for x in f1[1:] if x not in (c, d))
            b = next(x for x in f2[1:] if x not in (c, d))
            sign = _perm_sign(f1[1:], (a, c, d)) * _perm_sign(f2[1:], (b, c, d))
            rest = list(objs)
            rest.remove(f1)
            rest.remove(f2)
            return sign * CA * _reduce((*rest, ("D", a, b)), fresh)
    # 5. f^{abc} = -2i [Tr(T^a T^b T^c) - Tr(T^b T^a T^c)]
    if fs:
        f = fs[0]
        rest = list(objs)
        rest.remove(f)
        _, a, b, c = f
        i, j, k = fresh(), fresh(), fresh()
        first = (("T", a, i, j), ("T", b, j, k), ("T", c, k, i))
        second = (("T", b, i, j), ("T", a, j, k), ("T", c, k, i))
        return -2 * sympy.I * (_reduce((*rest, *first), fresh) - _reduce((*rest, *second), fresh))
    # 6. Fierz on a summed adjoint index
    for t1, t2 in itertools.combinations(ts, 2):
        if t1[1] == t2[1]:
            rest = list(objs)
            rest.remove(t1)
            rest.remove(t2)
            (_, _, i, j), (_, _, k, l) = t1, t2
            return sympy.Rational(1, 2) * _reduce((*rest, ("d", i, l), ("d", k, j)), fresh) - 1 / (2 * N) * _reduce(
                (*rest, ("d", i, j), ("d", k, l)), fresh
            )
    if objs:
        raise ValueError(f"colour indices not summed in pairs: {objs}")
    return sympy.Integer(1)


@functools.lru_cache(maxsize=4096)
def reduce_product(objs: tuple) -> sympy.Expr:
    """``Σ_indices`` of one product of colour objects, every index occurring exactly twice."""
    count: dict[str, int] = {}
    for o in objs:
        for x in o[1:]:
            count[x] = count.get(x, 0) + 1
    odd = [x for x, v in count.items() if v != 2]
    if odd:
        raise ValueError(f"colour indices {odd} do not occur exactly twice in {objs}")
    return sympy.expand(_reduce(objs, _Fresh()))


def colour_sum(*factors: Sequence[Term], n: int | None = None) -> sympy.Expr:
    """``Σ_indices`` of the product of ``factors`` (every index summed): a number in ``N``, or at
    ``N = n`` when ``n`` is given."""
    total = sympy.expand(sympy.Add(*(c * reduce_product(objs) for c, objs in product(*factors))))
    return total.subs(N, n) if n is not None else total


# ---------------------------------------------------------------------------- explicit matrices
def generators(n: int):
    """The ``n² − 1`` generalised Gell-Mann matrices / 2 (numpy, ``Tr(T^a T^b) = δ^{ab}/2``)."""
    import numpy as np

    out = []
    for j in range(n):
        for k in range(j + 1, n):
            s = np.zeros((n, n), complex)
            s[j, k] = s[k, j] = 0.5
            a = np.zeros((n, n), complex)
            a[j, k], a[k, j] = -0.5j, 0.5j
            out += [s, a]
    for l in range(1, n):
        d = np.zeros((n, n), complex)
        for j in range(l):
            d[j, j] = 1
        d[l, l] = -l
        out.append(d / np.sqrt(2 * l * (l + 1)))
    return np.array(out)  # (n²-1, n, n)


def structure_constants(n: int):
    """``f^{abc} = −2i Tr([T^a, T^b] T^c)`` from :func:`generators` (real, shape ``(n²-1,)*3``)."""
    import numpy as np

    t = generators(n)
    comm = np.einsum("aij,bjk->abik", t, t) - np.einsum("bij,ajk->abik", t, t)
    return (-2j * np.einsum("abij,cji->abc", comm, t)).real
