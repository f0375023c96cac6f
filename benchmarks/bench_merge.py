"""Peak memory and wall time of the shard merge (``symlit-generate ... merge=true``) as the rows grow.

The merge reads every shard's rows into memory, removes duplicates, splits them and writes
``dataset/``, ``reference/`` and ``summary.json`` (:mod:`symlit.data.generate`). This script
measures what that costs per row, so a user can tell which node a merge of their array needs.

For each size it writes an array of ``--shards`` shard directories in the engine's own format
(``generator.json`` and Arrow files with chunk metadata, :mod:`symlit.calculus.engine`). The rows
are real generated pairs (the committed ``prim_ibp`` audit files, ``--templates``) made distinct by
prefixing an integer, and a ``--duplicates`` fraction of each shard's rows repeats rows of the
previous shard, so the merge has duplicates across shards to remove. It then runs the real merge
command in a child process and reads the child's peak resident memory (``wait4``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_merge.py --rows 25000 50000 100000 200000 --work /tmp/bench_merge

It prints, per size, the rows, peak RSS, wall time and bytes on disk, then the marginal memory per
row (least squares over the sizes; the intercept is the process's start-up: Python, Hydra,
``datasets``) and that line extrapolated to the reference's training-set sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symlit.calculus import engine, shards  # noqa: E402

SEED = 11  # the seed the templates' generator.json was generated with
REFERENCE_SIZES = {"prim_ibp": 23e6, "ode2": 32e6, "prim_fwd": 45e6, "ode1": 65e6, "prim_bwd": 88e6}


def template_rows(templates: Path) -> list[dict[str, str | int]]:
    rows = engine.read_rows(templates / "shard-0000")
    if not rows:
        raise SystemExit(f"no Arrow files under {templates}/shard-0000/shards: pass --templates DIR")
    return rows


def distinct_row(template: dict, k: int) -> dict:
    """``template`` with the integer ``k`` added to its source, so every ``k`` gives a distinct source."""
    digits = " ".join(str(k))
    return {
        "source": f"add INT+ {digits} {template['source']}",
        "target": template["target"],
        "n_ops": template["n_ops"],
    }


def write_array(
    out: Path, templates: Path, rows_total: int, n_shards: int, duplicates: float, rows_per_file: int = 1000
) -> tuple[int, int]:
    """Write ``n_shards`` shard directories holding ``rows_total`` rows in all; returns the count of
    distinct sources and of rows repeating another shard's."""
    identity = json.loads((templates / "shard-0000" / engine.CONFIG_FILE).read_text())
    examples = template_rows(templates)
    per_shard = rows_total // n_shards
    n_dup = int(per_shard * duplicates)
    k = 0
    previous: list[dict] = []
    for index in range(n_shards):
        directory = out / shards.shard_name(index)
        (directory / "shards").mkdir(parents=True)
        (directory / engine.CONFIG_FILE).write_text(
            json.dumps({**identity, "seed": shards.shard_seed(SEED, index)}, indent=1)
        )
        rows = [dict(r) for r in previous[:n_dup]] if index else []
        while len(rows) < per_shard:
            rows.append(distinct_row(examples[k % len(examples)], k))
            k += 1
        for i, row in enumerate(rows):
            row["chunk"] = i  # one row per chunk: every chunk of the prefix is done
        for f, start in enumerate(range(0, len(rows), rows_per_file)):
            part = rows[start : start + rows_per_file]
            engine._write_shard(directory / "shards", f, part, [r["chunk"] for r in part], {"ok": len(part)}, 0.0)
        previous = rows
    return k, n_dup * (n_shards - 1)


def run_merge(out: Path, n: int, n_shards: int) -> tuple[float, float]:
    """Run the merge command; its peak RSS in MiB and wall seconds."""
    held_out = min(1000, n // 20)
    command = [
        sys.executable,
        "-m",
        "symlit.data.generate",
        "data=prim_ibp",
        f"n={n}",
        f"n_shards={n_shards}",
        f"seed={SEED}",
        f"n_valid={held_out}",
        f"n_test={held_out}",
        f"output_dir={out}",
        "merge=true",
        "progress=false",
    ]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"merge failed: {' '.join(command)}\n{process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="share of each shard's rows repeating the previous shard's"
    )
    parser.add_argument("--templates", type=Path, default=ROOT / "experiments" / "data" / "prim_ibp_audit")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (replaced)")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    points = []
    print(f"{'rows':>9} {'distinct':>9} {'peak RSS MiB':>13} {'wall s':>7} {'shards MiB':>11} {'output MiB':>11}")
    for rows_total in args.rows:
        out = args.work / str(rows_total)
        distinct, repeated = write_array(out, args.templates, rows_total, args.shards, args.duplicates)
        shard_bytes = du(out)
        rss, wall = run_merge(out, rows_total // args.shards * args.shards, args.shards)  # every shard complete
        summary = json.loads((out / "summary.json").read_text())
        found = {
            "held-out inputs in train": summary["heldout_inputs_in_train"],
            "rows kept": sum(summary["splits"].values()),
            "duplicates removed": summary["duplicates_across_shards"],
        }
        expected = {"held-out inputs in train": 0, "rows kept": distinct, "duplicates removed": repeated}
        if found != expected:
            raise SystemExit(f"the merge of {out} gave {found}, not {expected}")
        points.append((summary["generated_rows"], rss))
        print(
            f"{summary['generated_rows']:>9} {distinct:>9} {rss:>13.0f} {wall:>7.1f} "
            f"{shard_bytes / 2**20:>11.1f} {(du(out) - shard_bytes) / 2**20:>11.1f}"
        )
        shutil.rmtree(out)

    slope, intercept = statistics.linear_regression(*zip(*points))
    print(
        f"\nmarginal memory: {slope * 2**20:.0f} bytes per row (least squares over {len(points)} sizes); "
        f"start-up {intercept:.0f} MiB"
    )
    for task, size in REFERENCE_SIZES.items():
        print(f"  {task:<9} {size / 1e6:>4.0f}M rows: ~{(intercept + slope * size) / 1024:.0f} GiB (extrapolated)")


if __name__ == "__main__":
    main()
