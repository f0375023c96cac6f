"""Whole-process QCD |M|² from symlit's generator against the textbook formulas.

Massless 2 -> 2 partons: Ellis, Stirling & Webber, *QCD and Collider Physics*, Table 7.1
(spin- and colour-averaged |M|²/g_s⁴). Heavy quarks: Combridge, Nucl. Phys. B151 (1979) 429, in
the form of ESW eq. (10.12) / Nason, Dawson & Ellis, Nucl. Phys. B303 (1988) 607:
``q q~ -> Q Q~``: (4/9)(τ₁² + τ₂² + ρ/2); ``g g -> Q Q~``: (1/(6τ₁τ₂) − 3/8)(τ₁² + τ₂² + ρ −
ρ²/(4τ₁τ₂)), with τ₁ = 2p₁·p₃/s, τ₂ = 2p₂·p₃/s, ρ = 4m²/s. Mixed: ``q q~ -> γ g``:
(8/9) e_q² (t² + u²)/(t u) per e² g_s² (the QED e+e- -> γγ result with one photon made a gluon:
colour Σ|T^a_{ij}|² / N² = C_F / N = 4/9).

Each process is compared at 20 random physical phase-space points (40-digit momenta), relative
error < 1e-10.
"""

from __future__ import annotations

import functools
import random

import mpmath
import pytest
import sympy

from symlit.qcd import colour
from symlit.qcd import generator as gen
from symlit.qed import kinematics

POINTS = 20
TOL = 1e-10
R = mpmath.mpf


def _dot(a, b):
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3]


def _plus(a, b, sign=1):
    return [x + sign * y for x, y in zip(a, b)]


@functools.cache
def squared(name: str, physical: bool = True) -> sympy.Expr:
    return gen.squared_process(gen.Process.parse(name), physical=physical)


def points(name: str, masses: dict[str, float], seed: int):
    """``(values for the |M|² symbols, s, t, u, m²)`` at random physical points."""
    proc = gen.Process.parse(name)
    rng = random.Random(seed)
    for _ in range(POINTS):
        with mpmath.workdps(40):
            p = kinematics.momenta(proc.legs, masses, rng)
            values = {f"m_{q}": masses.get(f"m_{q}", 0) for q in gen.QUARKS}
            values.update({"g_s": 1, "e": 1, "reg_prop": 0})
            for i in range(4):
                for j in range(i, 4):
                    values[f"s_{i + 1}{j + 1}"] = _dot(p[i], p[j])
            s = _dot(_plus(p[0], p[1]), _plus(p[0], p[1]))
            t = _dot(_plus(p[0], p[2], -1), _plus(p[0], p[2], -1))
            u = _dot(_plus(p[0], p[3], -1), _plus(p[0], p[3], -1))
            yield values, s, t, u, p


def max_error(
    name: str, formula, masses: dict[str, float] | None = None, seed: int = 0, physical: bool = True
) -> float:
    expr = squared(name, physical)
    worst = 0.0
    for values, s, t, u, p in points(name, masses or {}, seed):
        with mpmath.workdps(40):
            got = kinematics.evaluate(expr, values, dps=40)
            want = formula(s, t, u, p)
            worst = max(worst, float(abs(got - want) / abs(want)))
    return worst


ESW = {
    "u d -> u d": lambda s, t, u, p: R(4) / 9 * (s**2 + u**2) / t**2,
    "u u -> u u": lambda s, t, u, p: (
        R(4) / 9 * ((s**2 + u**2) / t**2 + (s**2 + t**2) / u**2) - R(8) / 27 * s**2 / (u * t)
    ),
    "u u~ -> d d~": lambda s, t, u, p: R(4) / 9 * (t**2 + u**2) / s**2,
    "u u~ -> u u~": lambda s, t, u, p: (
        R(4) / 9 * ((s**2 + u**2) / t**2 + (t**2 + u**2) / s**2) - R(8) / 27 * u**2 / (s * t)
    ),
    "u u~ -> G G": lambda s, t, u, p: R(32) / 27 * (t**2 + u**2) / (t * u) - R(8) / 3 * (t**2 + u**2) / s**2,
    "G G -> u u~": lambda s, t, u, p: R(1) / 6 * (t**2 + u**2) / (t * u) - R(3) / 8 * (t**2 + u**2) / s**2,
    "u G -> u G": lambda s, t, u, p: -R(4) / 9 * (s**2 + u**2) / (s * u) + (u**2 + s**2) / t**2,
    "G G -> G G": lambda s, t, u, p: R(9) / 2 * (3 - t * u / s**2 - s * u / t**2 - s * t / u**2),
}


@pytest.mark.parametrize("name", list(ESW))
def test_esw_table_7_1(name: str) -> None:
    assert max_error(name, ESW[name]) < TOL


# the same processes with other flavours / in crossed order: flavour and labelling independence
@pytest.mark.parametrize(
    "name, ref", [("d~ s~ -> d~ s~", "u d -> u d"), ("c c -> c c", "u u -> u u"), ("b~ b -> s~ s", "u u~ -> d d~")]
)
def test_other_flavours(name: str, ref: str) -> None:
    if name == "b~ b -> s~ s":  # antiquark first: t <-> u of the reference
        assert max_error(name, lambda s, t, u, p: ESW[ref](s, u, t, p)) < TOL
    else:
        assert max_error(name, ESW[ref]) < TOL


def _taus(s, p, m):
    return 2 * _dot(p[0], p[2]) / s, 2 * _dot(p[1], p[2]) / s, 4 * m**2 / s


@pytest.mark.parametrize("mass", [0.4, 1.3])
def test_combridge_qqbar_to_heavy(mass: float) -> None:
    def formula(s, t, u, p):
        t1, t2, rho = _taus(s, p, R(mass))
        return R(4) / 9 * (t1**2 + t2**2 + rho / 2)

    assert max_error("u u~ -> tt tt~", formula, {"m_tt": mass}) < TOL


@pytest.mark.parametrize("mass", [0.4, 1.3])
def test_combridge_gg_to_heavy(mass: float) -> None:
    def formula(s, t, u, p):
        t1, t2, rho = _taus(s, p, R(mass))
        return (1 / (6 * t1 * t2) - R(3) / 8) * (t1**2 + t2**2 + rho - rho**2 / (4 * t1 * t2))

    assert max_error("G G -> tt tt~", formula, {"m_tt": mass}) < TOL


def test_mixed_qqbar_to_photon_gluon() -> None:
    # e_u = 2/3: (8/9) (4/9) (t² + u²)/(t u)
    assert max_error("u u~ -> A G", lambda s, t, u, p: R(8) / 9 * R(4) / 9 * (t**2 + u**2) / (t * u)) < TOL
    # crossing: q g -> q γ = -(1/3) e_q² (s² + u²)/(s u)  (e_d = -1/3)
    assert max_error("d G -> d A", lambda s, t, u, p: -R(1) / 3 * R(1) / 9 * (s**2 + u**2) / (s * u)) < TOL


@pytest.mark.parametrize("name", ["u u~ -> G G", "G G -> G G"])
def test_feynman_polarisation_sum_is_wrong_with_two_gluons(name: str) -> None:
    """−g_{μν} for every gluon keeps unphysical polarisations: the physical sum is needed."""
    assert max_error(name, ESW[name], physical=False) > 1e-3


def test_single_gluon_sum_equals_feynman() -> None:
    a = squared("u u~ -> A G")
    b = squared("u u~ -> A G", physical=False)
    for values, *_ in points("u u~ -> A G", {}, 3):
        assert (
            kinematics.relative_difference(kinematics.evaluate(a, values, 40), kinematics.evaluate(b, values, 40)) < TOL
        )


def test_symbolic_n_colours() -> None:
    """With N symbolic, q q~ -> q' q~' is (N² − 1)/(4 N²) · 8(t² + u²)/s² · ... : at N = 3 the table."""
    proc = gen.Process.parse("u u~ -> d d~")
    expr = gen.squared_process(proc, n_colours=None)
    assert colour.N in expr.free_symbols
    for values, s, t, u, p in points("u u~ -> d d~", {}, 5):
        with mpmath.workdps(40):
            got = kinematics.evaluate(expr.subs(colour.N, 3), values, dps=40)
            assert abs(got - ESW["u u~ -> d d~"](s, t, u, p)) / abs(got) < TOL
            # the colour factor (N²-1)/(4N²) relative to N = 3 (2/9)
            got5 = kinematics.evaluate(expr.subs(colour.N, 5), values, dps=40)
            assert abs(got5 / got - (R(24) / 100) / (R(2) / 9)) < TOL


def test_diagram_counts() -> None:
    counts = {n: len(list(gen.diagrams(gen.Process.parse(n)))) for n in ESW}
    assert counts == {
        "u d -> u d": 1,
        "u u -> u u": 2,
        "u u~ -> d d~": 1,
        "u u~ -> u u~": 2,
        "u u~ -> G G": 3,
        "G G -> u u~": 3,
        "u G -> u G": 3,
        "G G -> G G": 4,
    }
    assert not list(gen.diagrams(gen.Process.parse("u u~ -> A A")))  # pure QED: not a QCD process


def test_process_level_row_joins_every_diagram() -> None:
    """``level="process"``: one row (diagram ``"process"``) whose amplitude joins every diagram's
    in parentheses, with the process's keys and ``<process> :: process`` as its diagram keys."""
    from symlit.qcd.diagram_text import amplitude_text

    proc = gen.Process.parse("u u~ -> G G")
    ds = list(gen.diagrams(proc))
    (row,) = gen.generate_process(proc, "process", simplify_timeout=None)
    assert row.diagram == "process"
    assert row.amp == "+".join(f"({amplitude_text(d)})" for d in ds)
    assert row.keys == {
        **gen.diagram_keys(ds[0]),
        "diagram": f"{row.keys['process']} :: process",
        "diagram_class": f"{row.keys['process']} :: process",
    }
