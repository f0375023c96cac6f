"""Random kinematic points: values of ``s_ij``, masses and ``e`` at which expressions are compared.

For 2 -> n processes (n = 2, 3) the point is a physical one: random masses, a centre-of-mass
energy above threshold, random angles; ``s_ij = p_i . p_j`` (metric ``+---``) and
``s_ii = p_i^2 = m_i^2``. Three-particle processes (1 -> 2, 2 -> 1) have no free invariants:
``s_ij`` follow from the masses by momentum conservation (the point is generally unphysical, which
does not matter for comparing rational functions). Other shapes get independent random values.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import mpmath
import sympy

from symlit.qed.particles import FERMIONS
from symlit.qed.symba_format import Leg


def _lorentz_dot(a: Sequence, b: Sequence):
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3]


def _two_body(M, m1, m2, rng: random.Random, mp):
    """Momenta of a two-body decay of a particle of mass ``M`` at rest, random direction."""
    p = mp.sqrt((M**2 - (m1 + m2) ** 2) * (M**2 - (m1 - m2) ** 2)) / (2 * M)
    cos_t = mp.mpf(rng.uniform(-1, 1))
    sin_t = mp.sqrt(1 - cos_t**2)
    phi = mp.mpf(rng.uniform(0, 2 * math.pi))
    d = (sin_t * mp.cos(phi), sin_t * mp.sin(phi), cos_t)
    e1, e2 = mp.sqrt(m1**2 + p**2), mp.sqrt(m2**2 + p**2)
    return [e1, p * d[0], p * d[1], p * d[2]], [e2, -p * d[0], -p * d[1], -p * d[2]]


def _boost(v, beta):
    """Boost 4-vector ``v`` by velocity 3-vector ``beta``."""
    b2 = sum(x * x for x in beta)
    if b2 == 0:
        return list(v)
    gamma = 1 / mpmath.sqrt(1 - b2)
    bp = sum(beta[i] * v[i + 1] for i in range(3))
    g2 = (gamma - 1) / b2
    e = gamma * (v[0] + bp)
    return [e] + [v[i + 1] + g2 * bp * beta[i] + gamma * beta[i] * v[0] for i in range(3)]


def momenta(legs: Sequence[Leg], masses: dict[str, object], rng: random.Random, dps: int = 40):
    """Physical 4-momenta (mpmath, ``dps`` digits) for 2 -> 2 or 2 -> 3 legs, indexed like ``legs``."""
    with mpmath.workdps(dps):
        mp = mpmath.mp
        m = [mpmath.mpf(masses.get(leg.species.particle.mass_name, 0) or 0) for leg in legs]
        ins = [i for i, leg in enumerate(legs) if leg.incoming]
        outs = [i for i, leg in enumerate(legs) if not leg.incoming]
        if len(ins) != 2 or len(outs) not in (2, 3):
            raise ValueError("physical momenta are drawn for 2 -> 2 and 2 -> 3 processes only")
        threshold = max(m[ins[0]] + m[ins[1]], sum(m[i] for i in outs))
        rs = threshold * mpmath.mpf(rng.uniform(1.2, 3.0)) + mpmath.mpf(rng.uniform(0.1, 1.0))
        p: dict[int, list] = {}
        a, b = _two_body(rs, m[ins[0]], m[ins[1]], rng, mp)
        p[ins[0]], p[ins[1]] = a, b
        if len(outs) == 2:
            p[outs[0]], p[outs[1]] = _two_body(rs, m[outs[0]], m[outs[1]], rng, mp)
        else:
            lo, hi = m[outs[1]] + m[outs[2]], rs - m[outs[0]]
            m23 = lo + (hi - lo) * mpmath.mpf(rng.uniform(0.05, 0.95))
            p0, p23 = _two_body(rs, m[outs[0]], m23, rng, mp)
            q1, q2 = _two_body(m23, m[outs[1]], m[outs[2]], rng, mp)
            beta = [p23[i + 1] / p23[0] for i in range(3)]
            p[outs[0]], p[outs[1]], p[outs[2]] = p0, _boost(q1, beta), _boost(q2, beta)
        return [p[i] for i in range(len(legs))]


def random_masses(rng: random.Random) -> dict[str, float]:
    """A random value in [0.1, 1.1) for every fermion mass symbol."""
    return {f"m_{n}": rng.uniform(0.1, 1.1) for n in FERMIONS}


def point(legs: Sequence[Leg], rng: random.Random, dps: int = 40) -> dict[str, object]:
    """Values (by symbol name) of every ``s_ij``, mass, ``e`` and ``reg_prop`` (= 0) for ``legs``.

    ``legs`` carry momentum labels ``p``; ``s_ij`` is keyed by those labels.
    """
    masses = random_masses(rng)
    values: dict[str, object] = {**masses, "e": rng.uniform(0.2, 1.5), "reg_prop": 0}
    labels = [leg.p for leg in legs]
    n_in = sum(leg.incoming for leg in legs)
    if n_in == 2 and len(legs) - n_in in (2, 3):
        with mpmath.workdps(dps):
            vecs = momenta(legs, masses, rng, dps)
            for i, pi in zip(labels, vecs):
                for j, pj in zip(labels, vecs):
                    if i <= j:
                        values[f"s_{i}{j}"] = _lorentz_dot(pi, pj)
    elif len(legs) == 3:
        # 3-point: p_a = p_b + p_c (incoming a) with every s_ij fixed by the masses
        msq = {leg.p: (masses.get(leg.species.particle.mass_name, 0) or 0) ** 2 for leg in legs}
        sign = {leg.p: 1 if leg.incoming else -1 for leg in legs}
        # sum_k sign_k p_k = 0  =>  2 sign_i sign_j s_ij = msq_k - msq_i - msq_j for {i, j, k}
        for i in labels:
            values[f"s_{i}{i}"] = msq[i]
            for j in labels:
                if i < j:
                    (k,) = [x for x in labels if x not in (i, j)]
                    values[f"s_{i}{j}"] = (msq[k] - msq[i] - msq[j]) / (2 * sign[i] * sign[j])
    else:
        for i in labels:
            for j in labels:
                if i <= j:
                    values[f"s_{i}{j}"] = rng.uniform(-2, 2)
    return values


def free_point(symbols: Sequence[sympy.Symbol], rng: random.Random) -> dict[str, object]:
    """Independent random values for every symbol (``reg_prop`` = 0): a check without kinematics."""
    return {s.name: (0 if s.name == "reg_prop" else rng.uniform(0.2, 1.5)) for s in symbols}


MAX_EXPONENT = 256


def evaluate(expr: sympy.Basic, values: dict[str, object], dps: int | None = None):
    """Numeric value of ``expr`` at ``values`` (by symbol name): complex floats, or mpmath when
    ``dps`` is given. Raises ``KeyError`` for a symbol without a value."""
    ctx = mpmath.mp if dps else None

    def num(x: sympy.Basic):
        if x.is_Rational:  # never Python ints: a decoded hypothesis may hold 2**10**9
            return mpmath.mpf(int(x.p)) / int(x.q) if ctx else complex(int(x.p) / int(x.q))
        if x is sympy.I:
            return mpmath.mpc(0, 1) if ctx else 1j
        if x.is_Symbol:
            v = values[x.name]
            return mpmath.mpmathify(v) if ctx else complex(v)
        if x.is_Add:
            total = 0
            for a in x.args:
                total += num(a)
            return total
        if x.is_Mul:
            total = 1
            for a in x.args:
                total *= num(a)
            return total
        if x.is_Pow:
            b, e = num(x.base), x.exp
            if e.is_Integer:
                if abs(int(e)) > MAX_EXPONENT:
                    raise OverflowError(f"exponent {e} is larger than {MAX_EXPONENT}")
                return b ** int(e)
            return b ** num(e)
        if x.is_Float:
            return mpmath.mpf(str(x)) if ctx else float(x)
        raise ValueError(f"cannot evaluate {type(x).__name__} node {x}")

    if dps:
        with mpmath.workdps(dps):
            return num(expr)
    return num(expr)


def relative_difference(a, b) -> float:
    """``|a - b| / max(|a|, |b|)`` (0 when both vanish)."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else float(abs(a - b) / scale)


def agree_at(want: sympy.Expr, got: sympy.Expr, points: Iterable[dict[str, object]], tolerance: float) -> bool:
    """Whether ``got`` equals ``want`` within ``tolerance`` (relative) at every point where ``want``
    is defined, and at one at least. ``got`` undefined where ``want`` is defined disagrees."""
    checked = 0
    for values in points:
        try:
            a = evaluate(want, values)
        except (ZeroDivisionError, OverflowError):
            continue
        try:
            b = evaluate(got, values)
        except (ZeroDivisionError, OverflowError, KeyError):
            return False
        if relative_difference(a, b) > tolerance:
            return False
        checked += 1
    return checked > 0
