"""Traces of Dirac gamma matrices in 4 dimensions, and Lorentz contraction: our own engine.

A trace is taken of a product of **factors**; a factor is a linear combination of one gamma
matrix and the identity, e.g. ``slash("p1", mass="m_e")`` = ``p̸₁ + m_e`` or ``gamma("mu")`` =
``γ^μ``. Results are :data:`Poly` dictionaries ``{monomial: integer coefficient}``; a monomial is
a sorted tuple of atoms

* ``("d", a, b)``: the dot product ``a·b`` of two vectors (``a <= b``),
* ``("v", a, mu)``: the component ``a^μ``,
* ``("g", mu, nu)``: the metric ``g^{μν}`` (``mu <= nu``),
* ``("m", name)``: a mass symbol.

Method: every product is expanded into traces of plain gamma strings; a Lorentz index repeated
inside one string is removed first with the 4-dimensional identities ``γ^μγ_μ = 4``,
``γ^μ S γ_μ = -2 S^R`` (``S`` odd, ``S^R`` reversed) and
``γ^μ a₁…aₙ γ_μ = 2 (aₙ a₁…aₙ₋₁ + aₙ₋₁…a₁ aₙ)`` (``n`` even); the rest is expanded by
``Tr[a₁…aₙ] = Σₖ (-1)ᵏ (a₁·aₖ) Tr[a₂…âₖ…aₙ]`` (with ``Tr[1] = 4``, odd strings vanish).
Indices shared between traces are contracted afterwards by :func:`contract`
(``g^μ_μ = 4``, ``g^{μν}a_ν = a^μ``, ``a^μ b_μ = a·b``).

The results are symmetric where they must be: ``Tr[p̸₂γ^μp̸₁γ^ν] = 4(p₂^μp₁^ν + p₂^νp₁^μ -
g^{μν}p₁·p₂)``, also when the slashed momenta come with masses (SymPy's ``gamma_trace`` returned an
antisymmetric result there; see ``tests/test_qed_dirac.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Union

Atom = tuple
Mono = tuple  # sorted tuple of atoms
Coeff = Union[int, Fraction]
Poly = dict  # Mono -> Coeff
Item = tuple  # ("v", vector) slashed vector, or ("i", index) gamma^index
Factor = tuple  # of (coeff, mono, item | None): a linear combination of one gamma and the identity


# ---------------------------------------------------------------------------- building blocks
def slash(vector: str, mass: str | None = None, mass_sign: int = 1) -> Factor:
    """``p̸`` or ``p̸ + mass_sign * m`` (a propagator numerator or a spin sum)."""
    terms: list = [(1, (), ("v", vector))]
    if mass is not None:
        terms.append((mass_sign, (("m", mass),), None))
    return tuple(terms)


def gamma(index: str) -> Factor:
    """``γ^index``."""
    return ((1, (), ("i", index)),)


def scalar(coeff: Coeff, mono: Mono = ()) -> Factor:
    """A multiple of the identity."""
    return ((coeff, tuple(sorted(mono)), None),)


def _pair(a: Item, b: Item) -> Atom:
    (ka, na), (kb, nb) = a, b
    if ka == "v" and kb == "v":
        return ("d", *sorted((na, nb)))
    if ka == "i" and kb == "i":
        return ("g", *sorted((na, nb)))
    return ("v", na, nb) if ka == "v" else ("v", nb, na)


def _add_into(out: Poly, mono: Mono, coeff: Coeff) -> None:
    value = out.get(mono, 0) + coeff
    if value:
        out[mono] = value
    else:
        out.pop(mono, None)


def _merge(m1: Mono, m2: Mono) -> Mono:
    return tuple(sorted(m1 + m2)) if m1 and m2 else (m1 or m2)


def poly_mul(a: Poly, b: Poly, contract_indices: bool = True) -> Poly:
    """The product of two polynomials, with repeated Lorentz indices contracted."""
    out: Poly = {}
    for m1, c1 in a.items():
        for m2, c2 in b.items():
            mono = _merge(m1, m2)
            coeff = c1 * c2
            if contract_indices:
                k, mono = contract_monomial(mono)
                coeff *= k
            _add_into(out, mono, coeff)
    return out


def poly_add(a: Poly, b: Poly, scale: Coeff = 1) -> Poly:
    """``a + scale * b`` (a new dictionary); the QCD vertices are sums of such terms."""
    out = dict(a)
    for m, c in b.items():
        _add_into(out, m, scale * c)
    return out


# ---------------------------------------------------------------------------- contraction
def contract_monomial(mono: Mono) -> tuple[int, Mono]:
    """Contract every Lorentz index that occurs twice in ``mono``: ``(factor, new monomial)``."""
    tensors = [a for a in mono if a[0] in ("g", "v")]
    if not tensors:
        return 1, mono
    counts: dict[str, int] = {}
    for a in tensors:
        for idx in a[1:] if a[0] == "g" else a[2:]:
            counts[idx] = counts.get(idx, 0) + 1
    if all(c == 1 for c in counts.values()):
        return 1, mono
    for idx, c in counts.items():
        if c > 2:
            raise ValueError(f"Lorentz index {idx!r} occurs {c} times in one term")
    scalars = [a for a in mono if a[0] not in ("g", "v")]
    # graph: index nodes ("I", name) and vector terminals ("V", k); every tensor atom is an edge
    adj: dict[tuple, list[tuple[tuple, int]]] = {}
    vec_name: dict[tuple, str] = {}
    for e, a in enumerate(tensors):
        if a[0] == "g":
            u, w = ("I", a[1]), ("I", a[2])
        else:
            u, w = ("V", e), ("I", a[2])
            vec_name[u] = a[1]
        adj.setdefault(u, []).append((w, e))
        adj.setdefault(w, []).append((u, e))
    used: set[int] = set()
    factor = 1
    out = list(scalars)

    def end_label(node: tuple) -> tuple[str, str]:
        return ("V", vec_name[node]) if node[0] == "V" else ("I", node[1])

    def walk(start: tuple) -> tuple:
        node = start
        while True:
            nxt = [(w, e) for w, e in adj[node] if e not in used]
            if not nxt:
                return node
            w, e = nxt[0]
            used.add(e)
            node = w
            if len(adj[node]) != 2:  # a vector terminal or a free index
                return node

    ends = [n for n, edges in adj.items() if len(edges) == 1]
    for start in ends:
        if all(e in used for _, e in adj[start]):
            continue
        stop = walk(start)
        (k1, n1), (k2, n2) = end_label(start), end_label(stop)
        if k1 == "V" and k2 == "V":
            out.append(("d", *sorted((n1, n2))))
        elif k1 == "I" and k2 == "I":
            out.append(("g", *sorted((n1, n2))))
        else:
            out.append(("v", n1, n2) if k1 == "V" else ("v", n2, n1))
    # what is left are closed loops of metrics: g^μ_μ = 4 each
    remaining = {e for e in range(len(tensors))} - used
    while remaining:
        e0 = remaining.pop()
        a = tensors[e0]
        node = ("I", a[2])
        start = ("I", a[1])
        while node != start:
            w, e = next((w, e) for w, e in adj[node] if e in remaining)
            remaining.discard(e)
            node = w
        factor *= 4
    return factor, tuple(sorted(out))


def contract(poly: Poly) -> Poly:
    """Contract repeated Lorentz indices in every monomial of ``poly``."""
    out: Poly = {}
    for mono, coeff in poly.items():
        k, m = contract_monomial(mono)
        _add_into(out, m, coeff * k)
    return out


# ---------------------------------------------------------------------------- traces
class TraceEngine:
    """Traces of gamma strings with a memo of the strings already traced (one engine per job)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Item, ...], Poly] = {}

    def trace(self, factors: Sequence[Factor]) -> Poly:
        """``Tr[F₁ F₂ … Fₙ]`` of factors made by :func:`slash`, :func:`gamma`, :func:`scalar`."""
        out: Poly = {}
        for coeff, mono, items in _expand(factors):
            if len(items) % 2:
                continue
            for m2, c2 in self.trace_items(items).items():
                k, m = contract_monomial(_merge(mono, m2))
                _add_into(out, m, coeff * c2 * k)
        return out

    def trace_items(self, items: tuple[Item, ...]) -> Poly:
        """Trace of a plain string of gamma matrices / slashed vectors."""
        n = len(items)
        if n % 2:
            return {}
        if n == 0:
            return {(): 4}
        key = items
        if key in self._memo:
            return self._memo[key]
        result = self._contract_inside(items)
        if result is None:
            result = {}
            first = items[0]
            for k in range(1, n):
                sign = 1 if k % 2 == 1 else -1
                rest = items[1:k] + items[k + 1 :]
                sub = self.trace_items(rest)
                if not sub:
                    continue
                atom = _pair(first, items[k])
                for mono, c in sub.items():
                    _add_into(result, tuple(sorted(mono + (atom,))), sign * c)
        self._memo[key] = result
        return result

    def _contract_inside(self, items: tuple[Item, ...]) -> Poly | None:
        """Remove an index repeated inside the string with the 4-d identities, or ``None``."""
        seen: dict[str, int] = {}
        for pos, (kind, name) in enumerate(items):
            if kind != "i":
                continue
            if name in seen:
                i, j = seen[name], pos
                break
            seen[name] = pos
        else:
            return None
        # cyclicity: rotate so the first occurrence is at position 0
        rot = items[i:] + items[:i]
        j -= i
        inner, rest = rot[1:j], rot[j + 1 :]
        n = len(inner)
        if n == 0:
            terms = [(4, ())]
        elif n % 2:
            terms = [(-2, inner[::-1])]
        else:
            terms = [(2, (inner[-1],) + inner[:-1]), (2, inner[-2::-1] + (inner[-1],))]
        out: Poly = {}
        for c, s in terms:
            for mono, v in self.trace_items(s + rest).items():
                _add_into(out, mono, c * v)
        return out


def _expand(factors: Sequence[Factor]) -> Iterable[tuple[Coeff, Mono, tuple[Item, ...]]]:
    """Every choice of one term per factor: ``(coefficient, scalar monomial, gamma string)``."""
    states: list[tuple[Coeff, Mono, tuple[Item, ...]]] = [(1, (), ())]
    for factor in factors:
        new = []
        for coeff, mono, items in states:
            for c, m, item in factor:
                new.append((coeff * c, _merge(mono, m), items + ((item,) if item is not None else ())))
        states = new
    return states


def trace(factors: Sequence[Factor]) -> Poly:
    """``Tr[F₁ … Fₙ]`` with a fresh engine (see :class:`TraceEngine`)."""
    return TraceEngine().trace(factors)


def evaluate(poly: Poly, dots: dict[tuple[str, str], complex], masses: dict[str, float] | None = None) -> complex:
    """Numeric value of an index-free polynomial (``dots[(a, b)]`` with ``a <= b``)."""
    total = 0
    for mono, c in poly.items():
        term = c
        for atom in mono:
            if atom[0] == "d":
                term *= dots[(atom[1], atom[2])]
            elif atom[0] == "m":
                term *= (masses or {})[atom[1]]
            else:
                raise ValueError(f"uncontracted atom {atom} in evaluate()")
        total += term
    return total
