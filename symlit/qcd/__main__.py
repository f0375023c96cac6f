"""Write QCD data: ``python -m symlit.qcd --out qcd_2to2.csv [--level diagram] [--workers 2]``.

Columns: ``amp`` (SYMBA-style text), ``sqamp``, ``process``, ``diagram`` and the split keys
``diagram_class``, ``process_key``, ``process_family`` (see :func:`symlit.qcd.generator.diagram_keys`).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time

from symlit.qcd import generator as gen
from symlit.qed.symba_format import sqamp_text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m symlit.qcd", description=__doc__)
    ap.add_argument("--particles", nargs="*", default=None, help="restrict the particle set, e.g. u d G A")
    ap.add_argument("--processes", nargs="*", default=None, help="explicit processes, e.g. 'u u~ -> G G'")
    ap.add_argument(
        "--orderings",
        action="store_true",
        help="every order of the incoming and of the outgoing legs (momentum labellings)",
    )
    ap.add_argument("--level", default="diagram", choices=["diagram", "process"])
    ap.add_argument("--timeout", type=float, default=10.0, help="CPU seconds for sympy.factor per expression")
    ap.add_argument("--n-colours", default="3", help="number of colours N, or 'N' to keep it symbolic")
    ap.add_argument(
        "--no-identical-factor",
        action="store_true",
        help="omit the 1/n! for identical final particles that MARTY includes",
    )
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", required=True, help="CSV file")
    args = ap.parse_args(argv)
    n_colours = None if args.n_colours == "N" else int(args.n_colours)
    t0 = time.perf_counter()
    try:
        processes = (
            [gen.Process.parse(p) for p in args.processes]
            if args.processes
            else gen.enumerate_processes(args.particles, args.orderings)
        )
    except (KeyError, ValueError) as err:
        ap.error(str(err))
    rows = gen.generate(
        processes, args.level, args.timeout, not args.no_identical_factor, n_colours, False, args.workers
    )
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["amp", "sqamp", "process", "diagram", "diagram_class", "process_key", "process_family"])
        for r in rows:
            w.writerow(
                [
                    r.amp,
                    sqamp_text(r.sqamp),
                    r.process,
                    r.diagram,
                    r.keys["diagram_class"],
                    r.keys["process"],
                    r.keys["process_family"],
                ]
            )
    print(
        f"{len(processes)} processes, {len(rows)} rows, {sum(not r.simplified for r in rows)} unfactored, "
        f"{time.perf_counter() - t0:.1f} s -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
