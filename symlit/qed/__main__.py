"""Write SYMBA-format data: ``python -m symlit.qed --shapes 2to2 --out qed_2to2.csv [--workers 2]``."""

from __future__ import annotations

import argparse
import csv
import sys
import time

from symlit.qed import generator as gen
from symlit.qed.cli import add_generation_options, report

SHAPES = {"1to2": (1, 2), "2to1": (2, 1), "2to2": (2, 2), "2to3": (2, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m symlit.qed", description=__doc__)
    ap.add_argument("--shapes", nargs="+", default=["2to2"], choices=sorted(SHAPES))
    ap.add_argument("--particles", nargs="*", default=None, help="restrict the particle table, e.g. e mu A")
    add_generation_options(ap)
    ap.add_argument("--reg-prop", action="store_true", help="add reg_prop to every propagator denominator")
    ap.add_argument(
        "--work-dir",
        default=None,
        help="generate in resumable shards here (a rerun continues; an interruption loses one shard)",
    )
    ap.add_argument("--shard-size", type=int, default=10, help="processes per shard (with --work-dir)")
    ap.add_argument("--out", required=True, help="CSV file with columns amp,sqamp,process")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    processes = [p for s in args.shapes for p in gen.enumerate_processes(*SHAPES[s], particles=args.particles)]
    if args.work_dir:
        rows = gen.generate_sharded(
            processes,
            args.work_dir,
            args.shard_size,
            args.level,
            args.timeout,
            args.reg_prop,
            not args.no_identical_factor,
            args.workers,
            log=lambda m: print(m, file=sys.stderr),
        )
    else:
        rows = [
            gen.row_record(r)
            for r in gen.generate(
                processes, args.level, args.timeout, args.reg_prop, not args.no_identical_factor, args.workers
            )
        ]
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["amp", "sqamp", "process"])
        for r in rows:
            w.writerow([r["amp"], r["sqamp"], r["process"]])
    report(len(processes), len(rows), sum(not r["simplified"] for r in rows), t0, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
