"""Print the QCD physics table of experiments/qcd.md: for every textbook process of
tests/test_qcd_physics.py, the largest relative error of symlit's whole-process |M|² at the tests'
20 random physical phase-space points (40-digit arithmetic; the tests assert < 1e-10).

    python experiments/qcd_physics_table.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_qcd_physics as t  # the tests' formulas and helpers, not a copy of them

R = t.R


def rows() -> list[tuple[str, str, object, dict[str, float] | None]]:
    table = [(name, "ESW Table 7.1", formula, None) for name, formula in t.ESW.items()]
    for mass in (0.4, 1.3):

        def qq(s, t_, u_, p, m=mass):
            t1, t2, rho = t._taus(s, p, R(m))
            return R(4) / 9 * (t1**2 + t2**2 + rho / 2)

        def gg(s, t_, u_, p, m=mass):
            t1, t2, rho = t._taus(s, p, R(m))
            return (1 / (6 * t1 * t2) - R(3) / 8) * (t1**2 + t2**2 + rho - rho**2 / (4 * t1 * t2))

        table += [
            (f"u u~ -> tt tt~ (m_tt = {mass})", "Combridge 1979", qq, {"m_tt": mass}),
            (f"G G -> tt tt~ (m_tt = {mass})", "Combridge 1979", gg, {"m_tt": mass}),
        ]
    table += [
        ("u u~ -> A G", "(8/9) e_q^2 (t^2+u^2)/(tu)", lambda s, tt, u, p: R(32) / 81 * (tt**2 + u**2) / (tt * u), None),
        ("d G -> d A", "-(1/3) e_q^2 (s^2+u^2)/(su)", lambda s, tt, u, p: -R(1) / 27 * (s**2 + u**2) / (s * u), None),
    ]
    return table


def main() -> None:
    print("| process | reference | max relative error at 20 points |\n|---|---|---|")
    start = time.perf_counter()
    for name, reference, formula, masses in rows():
        process = name.split(" (")[0]
        print(f"| `{name}` | {reference} | {t.max_error(process, formula, masses):.1e} |", flush=True)
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
