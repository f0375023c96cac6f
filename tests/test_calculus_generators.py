"""Generators and verifiers: generated samples verify, wrong answers do not, hangs are abandoned."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import sympy as sp

from symlit.calculus import engine, verify
from symlit.calculus.cleaning import finite_somewhere, isolate, nested_exp_depth
from symlit.calculus.generators import Generator, GeneratorConfig, Reject, generate_chunk, primitive
from symlit.calculus.prefix import D2FX, DFX, SYMBOLS
from symlit.core.limits import SampleTimeout, owns, time_limit

x, a8 = SYMBOLS["x"], SYMBOLS["a8"]
SMALL = {"max_ops": 5}


def _chunk_in_a_fresh_process(task: str, attempts: int, bound: float = 240.0, tries: int = 2) -> tuple[list, dict]:
    """``generate_chunk`` in a spawned interpreter, abandoned after ``bound`` seconds.

    In-process, the generator's SIGALRM limit cannot interrupt one huge C-level bignum product, and
    SymPy's unseeded randomness and hash order occasionally send ``heurisch`` down such a path (the
    generation engine's watchdog kills such a worker; this test has none). A fresh interpreter
    draws another path; two abandoned tries fail the test instead of hanging the suite.
    """
    import concurrent.futures as futures
    import multiprocessing as mp

    for _ in range(tries):
        pool = futures.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
        job = pool.submit(generate_chunk, GeneratorConfig(task=task, **SMALL), 3, attempts)
        try:
            return job.result(timeout=bound)
        except futures.TimeoutError:
            for process in list(pool._processes.values()):
                process.kill()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    pytest.fail(f"{task}: generating {attempts} attempts did not finish in {bound} s, {tries} times")


@pytest.mark.parametrize(("task", "attempts"), [("prim_bwd", 60), ("prim_fwd", 60), ("ode1", 40)])
def test_generated_samples_verify(task, attempts):
    samples, stats = _chunk_in_a_fresh_process(task, attempts)
    assert samples, stats
    assert sum(stats.values()) == attempts
    for s in samples:
        if task.startswith("prim"):
            assert s["source"].startswith("sub Y' ")
            assert verify.check_integral(s["source"], s["target"]), s
        else:
            assert "Y'" in s["source"].split() and "a8" in s["target"].split()
            assert verify.check_ode(s["source"], s["target"], order=1), s


@pytest.mark.slow  # sympy.dsolve and integration by parts: the slowest generators
def test_ode2_and_ibp_samples_verify():
    gen = Generator(GeneratorConfig(task="ode2", max_ops=5, solve_seconds=0.3))
    samples, _ = generate_chunk(gen.config, seed=1, attempts=25, generator=gen)
    for s in samples:
        assert verify.check_ode(s["source"], s["target"], order=2), s
    gen = Generator(GeneratorConfig(task="prim_ibp", max_ops=4))
    samples, stats = generate_chunk(gen.config, seed=0, attempts=150, generator=gen)
    assert "no_known_primitive" in stats
    for s in samples:
        assert verify.check_integral(s["source"], s["target"]), s


def test_integral_verifier_accepts_equivalent_and_rejects_wrong_answers():
    source = "sub Y' mul INT+ 2 mul x cos pow x INT+ 2"  # f = 2 x cos(x^2)
    assert verify.check_integral(source, "sin pow x INT+ 2")
    assert verify.check_integral(source, "add INT+ 7 sin pow x INT+ 2")  # + constant
    assert not verify.check_integral(source, "cos pow x INT+ 2")
    assert not verify.check_integral(source, "add x")  # malformed
    assert not verify.check_integral(source, "Y")
    # an equivalent form that is not structurally equal: 2 sin(x) cos(x) vs sin(x)^2
    assert verify.check_integral("sub Y' mul INT+ 2 mul sin x cos x", "pow sin x INT+ 2").ok
    assert verify.check_integral("sub Y' sin mul INT+ 2 x", "mul div INT- 1 INT+ 2 cos mul INT+ 2 x").ok
    assert verify.check_integral(
        "sub Y' pow sin x INT+ 2", "add div x INT+ 2 mul div INT- 1 INT+ 4 sin mul INT+ 2 x"
    ).ok


def test_ode_verifier():
    # y = a8 exp(x) solves y' - y = 0; y = exp(x) is a solution but not the general one
    assert verify.check_ode("add Y' mul INT- 1 Y", "mul a8 exp x", order=1)
    assert not verify.check_ode("add Y' mul INT- 1 Y", "exp x", order=1)
    assert verify.check_ode("add Y' mul INT- 1 Y", "exp x", order=1, require_constants=False)
    assert not verify.check_ode("add Y' mul INT- 1 Y", "mul a8 exp mul INT+ 2 x", order=1)
    # y'' + y = 0
    assert verify.check_ode("add Y'' Y", "add mul a8 sin x mul a9 cos x", order=2)
    assert not verify.check_ode("add Y'' Y", "add mul a8 sin x mul a9 exp x", order=2)


def test_equivalence():
    assert verify.equivalent("mul INT+ 2 x", "add x x")
    assert verify.equivalent("pow add x INT+ 1 INT+ 2", "add INT+ 1 add mul INT+ 2 x pow x INT+ 2")
    assert not verify.equivalent("mul INT+ 2 x", "mul INT+ 3 x")


def test_cleaning_helpers():
    assert isolate(sp.Add(sp.exp(x + a8), -5), a8) is not None
    assert sp.simplify(isolate(sp.exp(x + a8) - 5, a8) - (sp.log(5) - x)) == 0
    assert isolate(a8 * x + a8, a8) is None  # two occurrences
    assert nested_exp_depth("exp add x exp sinh x".split()) == 3
    assert nested_exp_depth("add INT+ 1 2 x".split()) == 0


def test_time_limit_interrupts_and_nests():
    steps = 0
    with pytest.raises(SampleTimeout), time_limit(0.2):
        while steps < 10**9:  # minutes of work on any machine: only the limit ends the loop
            steps += 1
    assert steps < 10**9
    # an inner limit that expires is the inner block's own; the outer limit is restored after it
    with time_limit(5) as outer:
        try:
            with time_limit(0.1) as inner:
                time.sleep(1)
        except SampleTimeout as err:
            assert owns(err, inner) and not owns(err, outer)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 3 < remaining <= 5
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_hanging_sympy_call_is_abandoned_and_counted(monkeypatch):
    def hang(*args, **kwargs):
        while True:
            pass

    monkeypatch.setattr(sp, "diff", hang)
    samples, stats = generate_chunk(
        GeneratorConfig(task="prim_bwd", max_ops=3, timeout=0.2, small_ops_prob=0), seed=0, attempts=3
    )
    assert not samples and stats.get("timeout", 0) + stats.get("constant", 0) + stats.get("invalid", 0) == 3
    assert stats.get("timeout", 0) >= 1


def test_a_hanging_verifier_returns_false(monkeypatch):
    finished = []

    def hang(*args, **kwargs):
        steps = 0
        while steps < 10**9:  # minutes of work on any machine: only the verifier's limit ends it
            steps += 1
        finished.append(steps)

    monkeypatch.setattr(sp, "diff", hang)
    assert not verify.check_integral("sub Y' x", "mul div INT+ 1 INT+ 2 pow x INT+ 2", timeout=0.3)
    assert finished == []  # every call was abandoned at the limit, none ran to its end


def test_a_stuck_worker_is_killed_and_replaced(tmp_path):
    """A worker whose chunk overruns the deadline (here: no per-sample limit and a slow task) is
    killed, counted as chunk_timeout, and the run goes on to the requested count."""
    config = GeneratorConfig(task="prim_bwd", max_ops=4, fast=True)  # the engine, not the distribution
    report = engine.generate(
        config, tmp_path, n_unique=20, workers=1, seed=0, shard_size=10, chunk_attempts=8, progress=False
    )
    assert report.unique >= 20
    # now a deadline no chunk can meet: every chunk is abandoned, and the run stops at max_attempts
    report = engine.generate(
        config,
        tmp_path / "stuck",
        n_unique=10,
        workers=1,
        seed=0,
        chunk_attempts=8,
        chunk_timeout=0.0,
        progress=False,
        max_attempts=8,
    )
    assert report.causes.get("chunk_timeout", 0) >= 8 and report.unique == 0


def test_generation_resumes_from_shards(tmp_path):
    config = GeneratorConfig(task="prim_bwd", max_ops=4, fast=True)  # the engine, not the distribution
    first = engine.generate(
        config, tmp_path, n_unique=20, workers=0, seed=5, shard_size=8, chunk_attempts=8, progress=False
    )
    shards = sorted((tmp_path / "shards").glob("*.arrow"))
    assert first.unique >= 20 and shards
    shards[-1].unlink()  # an interrupted run: the last shard never made it to disk
    again = engine.generate(
        config, tmp_path, n_unique=40, workers=0, seed=5, shard_size=8, chunk_attempts=8, progress=False
    )
    assert again.unique >= 40
    rows = engine.read_rows(tmp_path)
    chunks = sorted(c for _, meta in engine.iter_shards(tmp_path) for c in meta["chunks"])
    assert chunks == list(range(len(chunks)))  # the lost chunks were regenerated, none skipped
    with pytest.raises(ValueError, match="another configuration"):
        engine.generate(GeneratorConfig(task="prim_bwd", max_ops=5), tmp_path, n_unique=50, workers=0, progress=False)
    parts = engine.split(rows, n_valid=5, n_test=5, seed=0)
    train_sources = {r["source"] for r in parts["train"]}
    assert not train_sources & {r["source"] for r in parts["valid"] + parts["test"]}


def test_an_equation_without_the_highest_derivative_is_not_an_ode():
    # the degenerate ode2 pair once generated: the equation simplified to 0, any answer "solved" it
    assert not verify.check_ode("INT+ 0", "add a8 mul a9 x", order=2)
    assert verify.check_ode("INT+ 0", "add a8 mul a9 x", order=2).method == "no_derivative"
    assert verify.check_ode("add Y' mul INT- 1 Y", "mul a8 exp x", order=2).method == "no_derivative"
    assert not verify.check_ode("sub Y x", "x", order=1, require_constants=False)


def test_an_identity_on_part_of_the_domain_is_rejected():
    # d/dx 4 asin(sin(x/4)) = 1 only for |x| < 2 pi: a narrow sampling range would accept it
    verdict = verify.check_integral("sub Y' INT+ 1", "mul INT+ 4 asin sin div x INT+ 4")
    assert verdict == verify.Verdict("wrong", "partial_domain")
    assert verify.check_integral("sub Y' INT+ 1", "x").ok


def test_simplification_to_a_degenerate_equation_is_rejected():
    gen = Generator(GeneratorConfig(task="ode2", simplify_prob=1.0, simplify_seconds=60))
    eq = DFX + D2FX * (x + 1) - D2FX * x - D2FX  # holds Y'' until simplified
    with pytest.raises(Reject, match="degenerate"):
        gen._ode_sample(eq, a8 * x + SYMBOLS["a9"], 5, D2FX, random.Random(0))


def test_fwd_uses_doit_like_the_reference():
    # Risch leaves these unevaluated; the reference's .doit() integrates them
    f = 1 / sp.sqrt(1 - x**2)
    assert primitive(f) == sp.asin(x)
    with pytest.raises(Reject, match="unevaluated"):
        primitive(f, "risch")
    assert primitive(sp.sqrt(x)) == 2 * x ** sp.Rational(3, 2) / 3
    assert GeneratorConfig(task="prim_fwd").fwd_method == "risch_doit"
    assert GeneratorConfig(task="prim_fwd", fast=True).fwd_method == "risch"


def test_defaults_are_the_reference_settings():
    bwd, ibp, ode1 = (GeneratorConfig(task=t) for t in ("prim_bwd", "prim_ibp", "ode1"))
    assert (bwd.simplify_prob, bwd.simplify_seconds, bwd.small_ops_prob) == (0.5, 2.0, 1 / 40)
    assert ibp.simplify_prob == 1.0 and ode1.small_ops_prob == 0.0
    assert GeneratorConfig(task="prim_bwd", fast=True).simplify_prob == 0.0
    assert GeneratorConfig(task="prim_bwd", fast=True, simplify_prob=0.3).simplify_prob == 0.3


def test_validity_check_strips_functions_like_the_reference():
    # atanh(x**2 + 3) is nowhere real; the reference evaluates x**2 + 3 instead and keeps the tree
    tree = ["atanh", "add", "pow2", "x", "INT+", "3"]
    assert finite_somewhere(tree)
    assert not finite_somewhere(tree, identity=frozenset())
    assert not finite_somewhere(["sqrt", "sub", "INT-", "5", "pow2", "x"])  # sqrt is evaluated


def _bench_generate():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generate.py"
    spec = importlib.util.spec_from_file_location("bench_generate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_distinct_input_fractions_compare_at_equal_sample_sizes():
    bench = _bench_generate()
    inputs = [f"x{i % 500}" for i in range(1000)]  # 500 inputs, each twice
    assert bench.distinct_at(inputs, 1000) == 0.5
    assert bench.distinct_at(inputs, 1) == 1.0
    # 50 of 1,000 drawn: about 50 * (1 - 49 / (2 * 999)) / 50 = 0.975 distinct
    assert 0.96 < bench.distinct_at(inputs, 50) < 0.99
    small = bench.distribution([(s, "t") for s in inputs[:50]])  # 50 distinct inputs
    large = bench.distribution([(s, "t") for s in inputs])
    table = bench.compare(small, large)
    assert "distinct at n=50" in table
    raw, at_n = (line.split()[-2:] for line in table.splitlines()[2:4])
    assert raw == ["1.000", "0.500"] and at_n[0] == "1.000" and 0.96 < float(at_n[1]) < 0.99
