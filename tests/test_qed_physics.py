"""The generator's squared amplitudes against textbook results and against MARTY's data."""

from __future__ import annotations

import random
from pathlib import Path

import mpmath
import pytest

from symlit.qed import kinematics as K
from symlit.qed import symba_format as sf
from symlit.qed.diagram_text import amplitude_text, amplitude_topology, topology
from symlit.qed.generator import (
    Process,
    diagrams,
    enumerate_processes,
    factor_with_timeout,
    generate_process,
    squared_diagram,
    squared_process,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "symba-qed-2to2" / "valid.csv"
N_POINTS = 20
mp = mpmath.mpf


def _massless_point(proc: Process, rng: random.Random) -> dict:
    masses = {m: 0 for m in K.random_masses(rng)}
    vecs = K.momenta(proc.legs, masses, rng)
    v = {**masses, "e": mp(rng.uniform(0.2, 1.5)), "reg_prop": 0}
    with mpmath.workdps(40):
        for a, pa in zip(proc.legs, vecs):
            for b, pb in zip(proc.legs, vecs):
                if a.p <= b.p:
                    v[f"s_{a.p}{b.p}"] = K._lorentz_dot(pa, pb)
    return v


def _ffbar(v, q=1, mf="m_e", mm="m_mu"):
    m, M, e = mp(v[mf]), mp(v[mm]), mp(v["e"])
    s, t, u = 2 * m**2 + 2 * v["s_12"], m**2 + M**2 - 2 * v["s_13"], m**2 + M**2 - 2 * v["s_14"]
    return q**2 * 2 * e**4 / s**2 * ((m**2 + M**2 - t) ** 2 + (m**2 + M**2 - u) ** 2 + 2 * s * (m**2 + M**2))


def _bhabha(v):
    e, s, t, u = mp(v["e"]), 2 * v["s_12"], -2 * v["s_13"], -2 * v["s_14"]
    return 2 * e**4 * ((s**2 + u**2) / t**2 + 2 * u**2 / (s * t) + (t**2 + u**2) / s**2)


def _moller(v):
    e, s, t, u = mp(v["e"]), 2 * v["s_12"], -2 * v["s_13"], -2 * v["s_14"]
    return 2 * e**4 * ((s**2 + u**2) / t**2 + (s**2 + t**2) / u**2 + 2 * s**2 / (t * u))


def _compton(v):  # Peskin (5.87): e(p) A(k) -> e(p') A(k')
    e, m, pk, pkp = mp(v["e"]), mp(v["m_e"]), v["s_12"], v["s_14"]
    return 2 * e**4 * (pkp / pk + pk / pkp + 2 * m**2 * (1 / pk - 1 / pkp) + m**4 * (1 / pk - 1 / pkp) ** 2)


def _annihilation(v):  # Peskin (5.105): e(p1) e~(p2) -> A(k1) A(k2)
    e, m, pk1, pk2 = mp(v["e"]), mp(v["m_e"]), v["s_13"], v["s_14"]
    return 2 * e**4 * (pk2 / pk1 + pk1 / pk2 + 2 * m**2 * (1 / pk1 + 1 / pk2) - m**4 * (1 / pk1 + 1 / pk2) ** 2)


CASES = [
    ("e e~ -> mu mu~", _ffbar, False, 1),
    ("e e~ -> e e~", _bhabha, True, 2),
    ("e e -> e e", _moller, True, 2),
    ("e A -> e A", _compton, False, 2),
    ("e e~ -> A A", _annihilation, False, 2),
    ("u u~ -> mu mu~", lambda v: _ffbar(v, mp(2) / 3, "m_u"), False, 1),
    ("d d~ -> mu mu~", lambda v: _ffbar(v, mp(1) / 3, "m_d"), False, 1),
]


@pytest.mark.parametrize("text,textbook,massless,n_diagrams", CASES, ids=[c[0] for c in CASES])
def test_full_process_matches_textbook(text, textbook, massless, n_diagrams):
    proc = Process.parse(text)
    assert len(list(diagrams(proc))) == n_diagrams
    expr = squared_process(proc)
    rng = random.Random(text)
    worst = 0.0
    for _ in range(N_POINTS):
        if massless:
            v = _massless_point(proc, rng)
        else:
            v = K.point(proc.legs, rng)
        with mpmath.workdps(40):
            worst = max(worst, K.relative_difference(K.evaluate(expr, v, dps=40), textbook(v)))
    assert worst < 1e-10, f"{text}: relative error {worst:.2e}"


def test_per_diagram_squares_agree_with_marty_up_to_the_identical_particle_factor():
    rows = sf.read_symba_file(str(SAMPLE))[::25]  # 63 rows spread over the file
    rng = random.Random(0)
    for k, (amp, sqamp) in enumerate(rows):
        tree = sf.parse(amp)
        legs = sf.legs(tree)
        proc = Process(tuple(legs))
        (d,) = [d for d in diagrams(proc) if topology(d) == amplitude_topology(tree)]
        ours, theirs = squared_diagram(d, identical_factor=True), sf.parse_sqamp(sqamp)
        v = K.point(legs, rng)
        with mpmath.workdps(40):
            diff = K.relative_difference(K.evaluate(ours, v, dps=40), K.evaluate(theirs, v, dps=40))
        assert diff < 1e-10, f"row {k * 25 + 1}: {proc} differs from MARTY by {diff:.2e}"


def test_enumeration_and_amplitude_text_round_trip():
    counts = {shape: len(enumerate_processes(*shape)) for shape in [(1, 2), (2, 1), (2, 2)]}
    assert counts == {(1, 2): 27, (2, 1): 27, (2, 2): 279}
    for proc in enumerate_processes(2, 2, particles=["e", "u", "A"]):
        for d in diagrams(proc):
            tree = sf.parse(amplitude_text(d))
            assert sf.legs(tree) == list(proc.legs)
            assert amplitude_topology(tree) == topology(d)
    # 2 -> 3: e e~ -> mu mu~ A has 4 diagrams, e e~ -> e e~ A has 8
    assert len(list(diagrams(Process.parse("e e~ -> mu mu~ A")))) == 4
    assert len(list(diagrams(Process.parse("e e~ -> e e~ A")))) == 8


def test_process_level_row_joins_every_diagram():
    """``level="process"``: one row (diagram ``-1``) whose amplitude joins every diagram's in
    parentheses and whose squared amplitude is the whole process's, interference included."""
    proc = Process.parse("e e~ -> e e~")
    ds = list(diagrams(proc))
    assert len(ds) == 2
    (row,) = generate_process(proc, "process", simplify_timeout=None)
    assert row.diagram == -1
    assert row.amp == "+".join(f"({amplitude_text(d)})" for d in ds)
    assert row.sqamp == factor_with_timeout(squared_process(proc, identical_factor=True), None)[0]
    assert [r.diagram for r in generate_process(proc, simplify_timeout=None)] == [0, 1]
    with pytest.raises(ValueError, match="must be 'diagram' or 'process'"):
        generate_process(proc, "diagrams")
