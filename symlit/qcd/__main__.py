"""Write QCD data: ``python -m symlit.qcd --out qcd_2to2.csv [--level diagram] [--workers 2]``.

Columns: ``amp`` (SYMBA-style text), ``sqamp``, ``process``, ``diagram`` and the split keys
``diagram_class``, ``process_key``, ``process_family`` (see :func:`symlit.qcd.generator.diagram_keys`).
"""

from __future__ import annotations

import argparse
import csv
import time

from symlit.qcd import generator as gen
from symlit.qed.cli import add_generation_options, report
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
    add_generation_options(ap)
    ap.add_argument("--n-colours", default="3", help="number of colours N, or 'N' to keep it symbolic")
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
    report(len(processes), len(rows), sum(not r.simplified for r in rows), t0, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
