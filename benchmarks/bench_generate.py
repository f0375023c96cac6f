"""Calculus generators: throughput per core, length statistics, prefix round trips and the audit.

Throughput (one process = one core; ``OMP_NUM_THREADS=1``): each task generates for ``--seconds``
with the reference README settings (max_ops 15, max_int 5, positive, leaf_probs 0.75,0,0.25,0,
its operator weights; ``conf/data/calculus.yaml``) and reports accepted equations/s, the
acceptance rate, the main rejection causes and token-length statistics of inputs and outputs::

    python benchmarks/bench_generate.py --tasks prim_bwd prim_fwd prim_ibp ode1 ode2 --seconds 60
    python benchmarks/bench_generate.py --tasks prim_bwd --set fast=true   # the faster, non-reference settings

Side by side with the reference: ``--write DIR`` also writes every accepted pair (duplicates
kept, ``input<TAB>output``) to ``DIR/<task>.symlit``; ``--compare-distribution FILE`` compares
symlit's pairs (``--symlit FILE``, or generated here for ``--seconds``) with a reference-format
file (``count|input<TAB>output`` or the raw ``data.prefix`` export, e.g. written by a driver of
the reference generator) and prints, side by side, input/output length mean/median/p90, the
operator frequencies of the inputs (share of operator tokens, and share of inputs holding the
operator) and the distinct-input fraction, raw and at the size of the smaller file (it falls as
a sample grows, so only equal sizes compare)::

    python benchmarks/bench_generate.py --tasks prim_fwd --compare-distribution ref/prim_fwd.txt \
        --symlit side/prim_fwd.symlit

``--check FILE`` (one task) verifies every pair of a file (symlit's or the reference's) with the
task's verifier, which accepts only identities holding at every sampled point, and counts the
verdicts (``structural``, ``numeric``, ``partial_domain``, ``no_derivative`` for a degenerate
equation, ...).

Round trip: ``--round-trip 10000`` draws random expressions (every operator, coefficients,
constants, negative integers) and checks sympy -> prefix -> sympy is the identity on them and on
their derivatives.

Audit: ``--audit 1000`` generates 1,000 distinct pairs per task (with ``--workers`` processes,
resumable under ``--out``) and verifies every one with the task's verifier (derivative check for
integration, substitution for ODEs), exiting 1 unless all verify::

    python benchmarks/bench_generate.py --audit 1000 --workers 2 --set max_ops=6
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sympy as sp

from symlit.calculus import engine
from symlit.calculus.generators import TASKS, Generator, GeneratorConfig
from symlit.calculus.prefix import OPERATORS, PrefixError, UnsupportedExpression, X, prefix_to_sympy, sympy_to_prefix
from symlit.calculus.random_trees import TreeSampler
from symlit.core.limits import SampleTimeout, time_limit
from symlit.tasks.calculus import CalculusTask

TARGET_BWD = 30.0  # equations/s per core required of prim_bwd with fast=true


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text, text)


def lengths(values: list[int]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {}
    return {
        "mean": round(statistics.fmean(values), 1),
        "median": values[len(values) // 2],
        "p90": values[int(0.9 * (len(values) - 1))],
        "max": values[-1],
    }


def throughput(task: str, seconds: float, overrides: dict, seed: int, write: Path | None = None) -> dict:
    """Generate for ``seconds`` in this process: eq/s per wall second and per CPU second, lengths,
    rejections (and, with ``write``, every accepted pair in ``write/<task>.symlit``)."""
    generator = Generator(GeneratorConfig(task=task, **overrides))
    rng = random.Random(seed)
    causes: Counter = Counter()
    samples = []
    sink = None
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        sink = (write / f"{task}.symlit").open("w")
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        sample, cause = generator.attempt(rng)
        causes[cause] += 1
        if sample is not None:
            samples.append(sample)
            if sink is not None:
                sink.write(f"{sample['source']}\t{sample['target']}\n")
                sink.flush()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if sink is not None:
        sink.close()
    attempts = sum(causes.values())
    return {
        "task": task,
        "seconds": round(elapsed, 1),
        "cpu_seconds": round(cpu, 1),
        "accepted": len(samples),
        "attempts": attempts,
        "eq_per_s_per_core": round(len(samples) / elapsed, 3),
        "eq_per_cpu_s": round(len(samples) / max(cpu, 1e-9), 3),
        "acceptance": round(len(samples) / max(attempts, 1), 3),
        "top_rejections": dict(Counter({k: v for k, v in causes.items() if k != "ok"}).most_common(8)),
        "input_len": lengths([len(s["source"].split()) for s in samples]),
        "output_len": lengths([len(s["target"].split()) for s in samples]),
    }


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """Pairs of a reference-format or raw ``input<TAB>output`` file, each repeated ``count`` times."""
    from symlit.calculus.reference_io import read_reference

    return [(p.source, p.target) for p in read_reference(path) for _ in range(p.count)]


def distribution(pairs: list[tuple[str, str]]) -> dict:
    """Length statistics, input operator frequencies (% of operator tokens, % of inputs holding the
    operator) and the distinct-input fraction of a list of pairs (duplicates kept)."""
    ops_tokens: Counter = Counter()
    ops_inputs: Counter = Counter()
    for source, _ in pairs:
        tokens = [t for t in source.split()[2:] if t in OPERATORS]  # without the "sub Y'" head of integrals
        if not source.startswith("sub Y'"):
            tokens = [t for t in source.split() if t in OPERATORS]
        ops_tokens.update(tokens)
        ops_inputs.update(set(tokens))
    total_ops = max(sum(ops_tokens.values()), 1)
    return {
        "pairs": len(pairs),
        "distinct_inputs": round(len({s for s, _ in pairs}) / max(len(pairs), 1), 4),
        "inputs": [s for s, _ in pairs],
        "input_len": lengths([len(s.split()) for s, _ in pairs]),
        "output_len": lengths([len(t.split()) for _, t in pairs]),
        "op_token_pct": {op: 100 * c / total_ops for op, c in ops_tokens.items()},
        "op_input_pct": {op: 100 * c / max(len(pairs), 1) for op, c in ops_inputs.items()},
    }


def distinct_at(inputs: list[str], n: int, draws: int = 200, seed: int = 0) -> float:
    """Mean distinct fraction of ``n`` inputs drawn without replacement (``draws`` times).

    The distinct fraction falls as a sample grows (more chances to repeat), so two files compare
    only at the same size: the larger is subsampled to the smaller.
    """
    if n >= len(inputs):
        return len(set(inputs)) / max(len(inputs), 1)
    rng = random.Random(seed)
    return statistics.fmean(len(set(rng.sample(inputs, n))) / n for _ in range(draws))


def compare(reference: dict, ours: dict, tolerance: float = 1.5) -> str:
    """A side-by-side text table of two :func:`distribution` results; ``*`` marks operator token
    shares more than ``tolerance`` points apart."""
    n = min(reference["pairs"], ours["pairs"])
    at_n = f"distinct at n={n}"
    lines = [
        f"{'':<22}{'reference':>14}{'symlit':>14}",
        f"{'pairs':<22}{reference['pairs']:>14}{ours['pairs']:>14}",
        f"{'distinct inputs':<22}{reference['distinct_inputs']:>14.3f}{ours['distinct_inputs']:>14.3f}",
        f"{at_n:<22}{distinct_at(reference['inputs'], n):>14.3f}{distinct_at(ours['inputs'], n):>14.3f}",
    ]
    for side in ("input_len", "output_len"):
        for stat in ("mean", "median", "p90"):
            lines.append(f"{side + ' ' + stat:<22}{reference[side].get(stat, 0):>14}{ours[side].get(stat, 0):>14}")
    lines.append(f"{'operator':<10}{'ref tok%':>9}{'ours tok%':>10}{'diff':>7}{'ref in%':>9}{'ours in%':>9}")
    ops = sorted(
        set(reference["op_token_pct"]) | set(ours["op_token_pct"]), key=lambda o: -reference["op_token_pct"].get(o, 0)
    )
    for op in ops:
        a, b = reference["op_token_pct"].get(op, 0.0), ours["op_token_pct"].get(op, 0.0)
        mark = " *" if abs(a - b) > tolerance else ""
        lines.append(
            f"{op:<10}{a:>9.2f}{b:>10.2f}{b - a:>7.2f}{reference['op_input_pct'].get(op, 0.0):>9.1f}"
            f"{ours['op_input_pct'].get(op, 0.0):>9.1f}{mark}"
        )
    return "\n".join(lines)


def check_file(task: str, path: Path) -> dict:
    """Verdicts of the task's verifier on every distinct pair of ``path`` (see ``--check``)."""
    from symlit.calculus import verify

    order = {"ode1": 1, "ode2": 2}.get(task, 0)
    verdicts: Counter = Counter()
    failures = []
    for source, target in dict.fromkeys(read_pairs(path)):
        if order:
            verdict = verify.check_ode(source, target, order=order, timeout=30.0)
        else:
            verdict = verify.check_integral(source, target, timeout=30.0)
        verdicts[f"{'ok' if verdict.ok else 'rejected'}:{verdict.method}"] += 1
        if not verdict.ok and len(failures) < 5:
            failures.append(f"{verdict.method}: {source}\t{target}")
    total = sum(verdicts.values())
    return {
        "task": task,
        "file": str(path),
        "pairs": total,
        "verified": sum(v for k, v in verdicts.items() if k.startswith("ok:")),
        "verdicts": dict(verdicts.most_common()),
        "examples": failures,
    }


def round_trip(n: int, seed: int) -> dict:
    """sympy -> prefix -> sympy on ``n`` random expressions and derivatives: exact with
    ``evaluate=False`` decoding; with the default (evaluating) decoding, also counts the trees that
    SymPy re-simplifies and checks that those are numerically equal."""
    from symlit.calculus.verify import equivalent

    operators = ",".join(f"{op}:1" for op in OPERATORS if op not in ("derivative", "f"))
    sampler = TreeSampler(
        operators=operators, max_ops=15, leaf_probs=[0.6, 0.1, 0.2, 0.1], n_coefficients=3, positive=False, max_int=20
    )
    rng = random.Random(seed)
    exact = same_evaluated = equal_value = checked = skipped = 0
    failures = []
    start = time.perf_counter()
    while checked < n:
        try:
            with time_limit(2.0):
                expr = prefix_to_sympy(sampler.expression(rng.randint(0, 15), rng))
                if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                    skipped += 1
                    continue
                candidates = [expr, sp.diff(expr, X)]
                encoded = [sympy_to_prefix(c) for c in candidates]
        except (PrefixError, UnsupportedExpression, SampleTimeout, RecursionError):
            skipped += 1  # a random division by zero, a DiracDelta derivative, a slow or recursing SymPy call
            continue
        for candidate, tokens in zip(candidates, encoded):
            checked += 1
            try:
                if prefix_to_sympy(tokens, evaluate=False) == candidate:
                    exact += 1
                else:
                    failures.append(" ".join(tokens))
            except PrefixError as err:
                failures.append(f"exact decoding failed ({err}): {' '.join(tokens)}")
            try:
                evaluated = prefix_to_sympy(tokens)
            except PrefixError as err:
                failures.append(f"evaluating decoding failed ({err}): {' '.join(tokens)}")
                continue
            if evaluated == candidate:
                same_evaluated += 1
            elif equivalent(tokens, sympy_to_prefix(evaluated)):
                equal_value += 1
    return {
        "checked": checked,
        "identical_exact_decoding": exact,
        "identical_evaluating_decoding": same_evaluated,
        "resimplified_but_numerically_equal": equal_value,
        "failures": failures[:10],
        "skipped_draws": skipped,
        "seconds": round(time.perf_counter() - start, 1),
    }


def audit(tasks: list[str], n: int, workers: int, out: Path, overrides: dict, seed: int) -> list[dict]:
    results = []
    for task_name in tasks:
        task = CalculusTask(generator=task_name, n_train=n, n_valid=0, n_test=0, progress=True, **overrides)
        directory = out / task_name
        start = time.perf_counter()
        report = engine.generate(task.generator_config(), directory, n, workers=workers, seed=seed, chunk_attempts=8)
        rows = engine.unique_rows(engine.read_rows(directory))[:n]
        generated = time.perf_counter() - start
        start = time.perf_counter()
        verdicts: Counter = Counter()
        failures = []
        for r in rows:
            verdict = task.verify(r["source"], "<no exact match>", r["target"])
            verdicts[f"{'ok' if verdict.ok else 'rejected'}:{verdict.method}"] += 1
            if not verdict.ok:
                failures.append(f"{verdict.method}: {r['source']}\t{r['target']}")
        results.append(
            {
                "task": task_name,
                "pairs": len(rows),
                "verified": len(rows) - len(failures),
                "rate": round((len(rows) - len(failures)) / max(len(rows), 1), 4),
                "verdicts": dict(verdicts.most_common()),
                "verify_seconds": round(time.perf_counter() - start, 1),
                "generate_seconds_this_run": round(generated, 1),
                "attempts": report.attempts,
                "failures": failures[:5],
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--seconds", type=float, default=60.0, help="generation time per task (throughput)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="generator overrides, e.g. max_ops=6")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--round-trip", type=int, default=0, metavar="N", help="check N random expressions instead")
    p.add_argument("--audit", type=int, default=0, metavar="N", help="generate and verify N pairs per task instead")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("data/audit"))
    p.add_argument(
        "--write", type=Path, default=None, metavar="DIR", help="also write accepted pairs to DIR/<task>.symlit"
    )
    p.add_argument(
        "--compare-distribution",
        type=Path,
        default=None,
        metavar="FILE",
        help="compare symlit's pairs with this reference-format file (one task)",
    )
    p.add_argument(
        "--symlit",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --compare-distribution: symlit's pairs (else generated here for --seconds)",
    )
    p.add_argument("--check", type=Path, default=None, metavar="FILE", help="verify every pair of FILE (one task)")
    args = p.parse_args()
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}

    if args.check:
        result = check_file(args.tasks[0], args.check)
        print(json.dumps(result, indent=1))
        return 0 if result["verified"] == result["pairs"] else 1
    if args.compare_distribution:
        if args.symlit is None:
            if len(args.tasks) != 1:
                p.error("--compare-distribution generates one task: give --tasks TASK (or --symlit FILE)")
            tmp = Path(args.out) / "compare"
            print(json.dumps(throughput(args.tasks[0], args.seconds, overrides, args.seed, write=tmp)), flush=True)
            args.symlit = tmp / f"{args.tasks[0]}.symlit"
        print(compare(distribution(read_pairs(args.compare_distribution)), distribution(read_pairs(args.symlit))))
        return 0
    if args.round_trip:
        result = round_trip(args.round_trip, args.seed)
        print(json.dumps(result, indent=1))
        return 0 if not result["failures"] else 1
    if args.audit:
        results = audit(args.tasks, args.audit, args.workers, args.out, overrides, args.seed)
        return 0 if all(r["rate"] == 1.0 and r["pairs"] == args.audit for r in results) else 1
    for task in args.tasks:
        result = throughput(task, args.seconds, overrides, args.seed, write=args.write)
        print(json.dumps(result), flush=True)
        if task == "prim_bwd" and overrides == {"fast": True}:
            verdict = "PASS" if result["eq_per_s_per_core"] >= TARGET_BWD else "FAIL"
            print(
                f"prim_bwd with fast=true: {result['eq_per_s_per_core']} eq/s per core "
                f"(target >= {TARGET_BWD}): {verdict}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
