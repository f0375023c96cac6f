"""Calculus generators: throughput per core, length statistics, prefix round trips and the audit.

Throughput (one process = one core; ``OMP_NUM_THREADS=1``): each task generates for ``--seconds``
with the reference README settings (max_ops 15, max_int 5, positive, leaf_probs 0.75,0,0.25,0,
its operator weights; ``conf/data/calculus.yaml``) and reports accepted equations/s, the
acceptance rate, the main rejection causes and token-length statistics of inputs and outputs::

    python benchmarks/bench_generate.py --tasks prim_bwd prim_fwd prim_ibp ode1 ode2 --seconds 60
    python benchmarks/bench_generate.py --tasks prim_bwd --set simplify_prob=0.5   # reference-like

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

import sympy as sp  # noqa: E402

from symlit.calculus import engine  # noqa: E402
from symlit.calculus.generators import TASKS, Generator, GeneratorConfig  # noqa: E402
from symlit.calculus.limits import SampleTimeout, time_limit  # noqa: E402
from symlit.calculus.prefix import OPERATORS, X, PrefixError, UnsupportedExpression, prefix_to_sympy, sympy_to_prefix  # noqa: E402
from symlit.calculus.random_trees import TreeSampler  # noqa: E402
from symlit.tasks.calculus import CalculusTask  # noqa: E402

TARGET_BWD = 30.0  # equations/s per core required for prim_bwd at the reference settings


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
    return {"mean": round(statistics.fmean(values), 1), "median": values[len(values) // 2],
            "p90": values[int(0.9 * (len(values) - 1))], "max": values[-1]}


def throughput(task: str, seconds: float, overrides: dict, seed: int) -> dict:
    generator = Generator(GeneratorConfig(task=task, **overrides))
    rng = random.Random(seed)
    causes: Counter = Counter()
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sample, cause = generator.attempt(rng)
        causes[cause] += 1
        if sample is not None:
            samples.append(sample)
    elapsed = time.perf_counter() - start
    attempts = sum(causes.values())
    return {
        "task": task, "seconds": round(elapsed, 1), "accepted": len(samples), "attempts": attempts,
        "eq_per_s_per_core": round(len(samples) / elapsed, 2),
        "acceptance": round(len(samples) / max(attempts, 1), 3),
        "top_rejections": dict(Counter({k: v for k, v in causes.items() if k != "ok"}).most_common(5)),
        "input_len": lengths([len(s["source"].split()) for s in samples]),
        "output_len": lengths([len(s["target"].split()) for s in samples]),
    }


def round_trip(n: int, seed: int) -> dict:
    """sympy -> prefix -> sympy on ``n`` random expressions and derivatives: exact with
    ``evaluate=False`` decoding; with the default (evaluating) decoding, also counts the trees that
    SymPy re-simplifies and checks that those are numerically equal."""
    from symlit.calculus.verify import equivalent

    operators = ",".join(f"{op}:1" for op in OPERATORS if op not in ("derivative", "f"))
    sampler = TreeSampler(operators=operators, max_ops=15, leaf_probs=[0.6, 0.1, 0.2, 0.1], n_coefficients=3,
                          positive=False, max_int=20)
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
    return {"checked": checked, "identical_exact_decoding": exact, "identical_evaluating_decoding": same_evaluated,
            "resimplified_but_numerically_equal": equal_value, "failures": failures[:10], "skipped_draws": skipped,
            "seconds": round(time.perf_counter() - start, 1)}


def audit(tasks: list[str], n: int, workers: int, out: Path, overrides: dict, seed: int) -> list[dict]:
    results = []
    for task_name in tasks:
        task = CalculusTask(generator=task_name, n_train=n, n_valid=0, n_test=0, progress=True, **overrides)
        directory = out / task_name
        start = time.perf_counter()
        report = engine.generate(task.generator_config(), directory, n, workers=workers, seed=seed,
                                 chunk_attempts=8)
        rows = engine.unique_rows(engine.read_rows(directory))[:n]
        generated = time.perf_counter() - start
        start = time.perf_counter()
        failures = [r for r in rows if not task.verify(r["source"], "<no exact match>", r["target"])]
        results.append({
            "task": task_name, "pairs": len(rows), "verified": len(rows) - len(failures),
            "rate": round((len(rows) - len(failures)) / max(len(rows), 1), 4),
            "verify_seconds": round(time.perf_counter() - start, 1), "generate_seconds_this_run": round(generated, 1),
            "attempts": report.attempts, "failures": [f"{r['source']}\t{r['target']}" for r in failures[:5]],
        })
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
    args = p.parse_args()
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}

    if args.round_trip:
        result = round_trip(args.round_trip, args.seed)
        print(json.dumps(result, indent=1))
        return 0 if not result["failures"] else 1
    if args.audit:
        results = audit(args.tasks, args.audit, args.workers, args.out, overrides, args.seed)
        return 0 if all(r["rate"] == 1.0 and r["pairs"] == args.audit for r in results) else 1
    for task in args.tasks:
        result = throughput(task, args.seconds, overrides, args.seed)
        print(json.dumps(result), flush=True)
        if task == "prim_bwd" and not overrides:
            verdict = "PASS" if result["eq_per_s_per_core"] >= TARGET_BWD else "FAIL"
            print(f"prim_bwd at the reference settings: {result['eq_per_s_per_core']} eq/s per core "
                  f"(target >= {TARGET_BWD}): {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
