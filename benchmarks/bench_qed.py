"""QED benchmarks: agreement with MARTY, sequence lengths, generator throughput.

    OMP_NUM_THREADS=1 python benchmarks/bench_qed.py [--data data_samples/symba-qed-2to2/valid.csv]
        [--workers 2] [--skip-throughput] [--points 3]

(a) For every row of the SYMBA file: rebuild the diagram from the amplitude's index structure,
    check that the generator enumerates it, square it with our engine, and compare with the file's
    squared amplitude at random physical points (reg_prop = 0). Convention mapping: MARTY's
    squared amplitudes are ours times 1/n! for n identical final-state particles (the generator's
    ``identical_factor``); e, charges, the 1/4 (1/2 per incoming particle) average, the -g photon
    sum, s_ij = p_i.p_j agree as they are; reg_prop is set to 0 (it only regulates poles).
(b) Mean and max sequence length of the squared amplitudes (and amplitudes) in each notation.
(c) Throughput: every 2->2 process of the particle table generated, squared and factored;
    2->3 diagrams squared per second (without and with factor).
(d) ``--scale 2to3 --work-dir DIR``: every process of that shape generated, squared and factored in
    resumable shards (``QEDGeneratedTask(work_dir=DIR)``, the shards the training data is read from),
    then statistics: processes, diagrams, distinct squared amplitudes and diagram keys, token
    lengths per notation, factor timeouts, generation time; the dataset is cached under DIR/cache.
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import sys
import time
from pathlib import Path

import mpmath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symlit.qed import diagram_text, dirac  # noqa: E402
from symlit.qed import generator as gen  # noqa: E402
from symlit.qed import kinematics as K  # noqa: E402
from symlit.qed import symba_format as sf  # noqa: E402
from symlit.qed.tokens import NOTATIONS, to_tokens  # noqa: E402


def marty_agreement(rows: list[tuple[str, str]], points: int) -> None:
    rng = random.Random(0)
    engine = dirac.TraceEngine()
    stats = collections.Counter()
    ratios = collections.Counter()
    worst = 0.0
    t0 = time.perf_counter()
    for k, (amp, sqamp) in enumerate(rows, start=1):  # noqa: B007 - k counts rows for the report after the loop
        tree = sf.parse(amp)
        legs = sf.legs(tree)
        proc = gen.Process(tuple(legs))
        match = [d for d in gen.diagrams(proc) if diagram_text.topology(d) == diagram_text.amplitude_topology(tree)]
        if len(match) != 1:
            stats["diagram not enumerated"] += 1
            continue
        ours = gen.squared_diagram(match[0], engine)
        theirs = sf.parse_sqamp(sqamp)
        sym = gen.symmetry_factor(proc)
        ok_raw, ok_mapped = True, True
        for _ in range(points):
            v = K.point(legs, rng)
            with mpmath.workdps(40):
                a, b = K.evaluate(ours, v, dps=40), K.evaluate(theirs, v, dps=40)
                ok_raw &= K.relative_difference(a, b) < 1e-10
                diff = K.relative_difference(a * sym, b)
                worst = max(worst, diff)
                ok_mapped &= diff < 1e-10
                ratio = complex(b / a)
        ratios[f"{ratio.real:.3f}" + (" (identical final particles)" if sym != 1 else "")] += 1
        stats["agree as is"] += ok_raw
        stats["agree with the 1/n! mapping"] += ok_mapped
    n = len(rows)
    print(f"\n(a) MARTY agreement on {n} rows ({points} points each, {time.perf_counter() - t0:.1f} s)")
    for key, value in stats.items():
        print(f"    {key:32s} {value:5d} / {n}  ({100 * value / n:.1f} %)")
    print(f"    worst relative difference after mapping: {worst:.1e}")
    print(f"    MARTY / ours: {dict(ratios)}")


def lengths(rows: list[tuple[str, str]]) -> None:
    print(f"\n(b) sequence lengths on {len(rows)} rows: mean / max tokens")
    print(f"    {'notation':14s} {'sqamp mean':>10s} {'sqamp max':>9s} {'amp mean':>9s} {'amp max':>8s}")
    exprs = [sf.parse_sqamp(s) for _, s in rows]
    trees = [sf.parse(a) for a, _ in rows]
    for notation in NOTATIONS:
        sq = [len(to_tokens(x, notation)) for x in exprs]
        am = [len(sf.amplitude_tokens(t, notation)) for t in trees]
        print(f"    {notation:14s} {statistics.mean(sq):10.1f} {max(sq):9d} {statistics.mean(am):9.1f} {max(am):8d}")


def throughput(workers: int, timeout: float) -> None:
    print("\n(c) throughput")
    t0 = time.perf_counter()
    procs = gen.enumerate_processes(2, 2)
    rows = gen.generate(procs, "diagram", timeout, workers=workers)
    dt = time.perf_counter() - t0
    slow = sum(not r.simplified for r in rows)
    print(
        f"    2->2: {len(procs)} processes, {len(rows)} diagrams generated, squared and factored in {dt:.1f} s "
        f"({workers or 1} worker(s)); {slow} not factored within {timeout:.0f} s"
    )
    t0 = time.perf_counter()
    full = gen.generate(procs, "process", timeout, workers=workers)
    print(f"    2->2 whole processes with interference: {len(full)} in {time.perf_counter() - t0:.1f} s")
    procs3 = gen.enumerate_processes(2, 3)
    sample = random.Random(0).sample(procs3, 40)
    ds = [d for p in sample for d in gen.diagrams(p)]
    engine = dirac.TraceEngine()
    t0 = time.perf_counter()
    for d in ds:
        gen.squared_diagram(d, engine)
        gen.amplitude_text(d)
    dt = time.perf_counter() - t0
    print(
        f"    2->3: {len(procs3)} processes, {sum(len(list(gen.diagrams(p))) for p in procs3)} diagrams in all; "
        f"on {len(ds)} diagrams of 40 random processes: {len(ds) / dt:.1f} diagrams/s squared (unfactored)"
    )
    t0 = time.perf_counter()
    rows3 = gen.generate(sample[:10], "diagram", timeout)
    dt = time.perf_counter() - t0
    print(
        f"    2->3 with factor: {len(rows3)} diagrams in {dt:.1f} s = {len(rows3) / dt:.2f} diagrams/s "
        f"({sum(not r.simplified for r in rows3)} not factored within {timeout:.0f} s)"
    )


def scale(shape: str, work_dir: str, workers: int, timeout: float) -> None:
    from symlit.data.datamodule import load_or_build
    from symlit.qed.keys import amplitude_keys
    from symlit.tasks import QEDGeneratedTask

    print(f"\n(d) {shape} at scale ({workers} workers, factor limit {timeout:.0f} s, shards in {work_dir})")
    task = QEDGeneratedTask(shapes=[shape], workers=workers, work_dir=work_dir, simplify_timeout=timeout)
    t0 = time.perf_counter()
    rows = task._generated()
    dt = time.perf_counter() - t0
    procs = {r["process"] for r in rows}
    slow = sum(not r["simplified"] for r in rows)
    print(
        f"    {len(procs)} processes, {len(rows)} diagrams, {len({r['sqamp'] for r in rows})} distinct squared "
        f"amplitudes (as text), {slow} factor timeouts; {dt:.1f} s wall-clock for this call "
        f"(0 if every shard existed); sum of per-diagram times {sum(r['seconds'] for r in rows):.1f} s"
    )
    trees = [sf.parse(r["amp"]) for r in rows]
    keys = [amplitude_keys(t) for t in trees]
    for level in ("diagram", "diagram_class", "diagram_family", "process", "process_family"):
        print(f"    distinct {level} keys: {len({k[level] for k in keys})}")
    exprs = [sf.parse_sqamp(r["sqamp"]) for r in rows]
    print(
        f"    {'notation':14s} {'sqamp mean':>10s} {'median':>7s} {'p95':>6s} {'max':>6s} {'amp mean':>9s} {'max':>6s}"
    )
    for notation in NOTATIONS:
        sq = sorted(len(to_tokens(e, notation)) for e in exprs)
        am = [len(sf.amplitude_tokens(t, notation)) for t in trees]
        print(
            f"    {notation:14s} {statistics.mean(sq):10.1f} {statistics.median(sq):7.0f} "
            f"{sq[int(0.95 * (len(sq) - 1))]:6d} {sq[-1]:6d} {statistics.mean(am):9.1f} {max(am):6d}"
        )
    t0 = time.perf_counter()
    data = load_or_build(task, Path(work_dir) / "cache")
    print(f"    cached dataset {dict((k, v.num_rows) for k, v in data.items())} in {time.perf_counter() - t0:.1f} s")


def histograms(data: str, out: str, split_by: str) -> None:
    """Token-length histograms of the three notations on one split of a SYMBA file (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from symlit.tasks import QEDSymbaTask

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    print(f"\n(e) token lengths per notation, {data}, split_by={split_by}")
    for notation, colour in zip(NOTATIONS, ("tab:blue", "tab:orange", "tab:green")):
        splits = QEDSymbaTask(path=data, split_by=split_by, notation=notation).build()
        for ax, column in zip(axes, ("target", "source")):
            lengths_ = [len(t.split()) for s in splits.values() for t in s[column]]
            ax.hist(
                lengths_,
                bins=40,
                range=(0, 440),
                histtype="step",
                linewidth=1.6,
                color=colour,
                label=f"{notation} (mean {statistics.mean(lengths_):.0f}, max {max(lengths_)})",
            )
            print(f"    {notation:14s} {column:7s} mean {statistics.mean(lengths_):6.1f} max {max(lengths_):4d}")
    for ax, what in zip(axes, ("squared amplitude (target)", "amplitude (source)")):
        ax.set_xlabel(f"{what} length, tokens")
        ax.set_ylabel("rows")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Sequence lengths by notation: {Path(data).name}, all {sum(len(s['source']) for s in splits.values())} rows"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"    -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data_samples" / "symba-qed-2to2" / "valid.csv"))
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--scale", choices=["2to2", "2to3"], help="only (d): generate every process of this shape")
    ap.add_argument("--work-dir", default="qed-shards", help="shard directory of --scale")
    ap.add_argument("--histograms", metavar="PNG", help="only (e): token-length histograms per notation")
    ap.add_argument("--split-by", default="diagram_family")
    args = ap.parse_args()
    if args.histograms:
        histograms(args.data, args.histograms, args.split_by)
        return
    if args.scale:
        scale(args.scale, args.work_dir, args.workers, args.timeout)
        return
    rows = sf.read_symba_file(args.data)
    marty_agreement(rows, args.points)
    lengths(rows)
    if not args.skip_throughput:
        throughput(args.workers, args.timeout)


if __name__ == "__main__":
    main()
