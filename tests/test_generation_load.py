"""Generated QED/QCD data does not depend on machine load: the ``factor`` limit counts CPU seconds.

The load test generates a small QED and a small QCD set three times in fresh processes pinned
to one core: once without a limit to measure every ``factor`` call's CPU time, then twice with a
tight limit (2.5 times the slowest call), alone and beside three busy loops pinned to the same
core (which stretch the generator's wall-clock time about fourfold, and leave the other cores to
the rest of the test suite). The two limited files must be byte-identical and equal to the
unlimited one. A wall-clock limit fails this test: beside the hogs the slowest calls take longer
than the limit in real time and their rows stay expanded.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sympy

from symlit.core.limits import SampleTimeout, time_limit

ROOT = Path(__file__).resolve().parents[1]

# Runs ``python -m <module>`` with ``sympy.factor`` wrapped to record each call's CPU seconds.
RUNNER = """
import importlib, json, sys, time
import sympy

module, times_path, *argv = sys.argv[1:]
factor, times = sympy.factor, []

def timed_factor(*args, **kwargs):
    start = time.process_time()
    try:
        return factor(*args, **kwargs)
    finally:
        times.append(time.process_time() - start)

sympy.factor = timed_factor
rc = importlib.import_module(module + ".__main__").main(argv)
with open(times_path, "w") as f:
    json.dump(times, f)
sys.exit(rc)
"""

CASES = {
    # 64 diagrams, factor 0.01-0.06 CPU s each
    "qed": ("symlit.qed", ["--shapes", "2to3", "--particles", "e", "A"]),
    # three whole processes with interference, factor 0.02-0.3 CPU s each
    "qcd": ("symlit.qcd", ["--level", "process", "--processes", "u u~ -> G G", "u G -> u G", "u u~ -> A G"]),
}
LOAD = 3  # busy loops beside the generator on its core
MARGIN = 2.5  # limit / slowest factor call (CPU seconds)


def _pin(core: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {core})


def _generate(module: str, argv: list[str], out: Path, timeout: float, core: int) -> tuple[list[float], float]:
    """The CPU seconds of every ``factor`` call, and the run's wall-clock / CPU time ratio."""
    times = out.with_suffix(".json")
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", RUNNER, module, str(times), *argv, "--timeout", repr(timeout), "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
        capture_output=True,
        timeout=600,
        preexec_fn=_pin(core),
    )
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(times.read_text()), wall / max(cpu, 1e-9)


@contextmanager
def _cpu_hogs(n: int, core: int) -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_pin(core)) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins processes to a core (Linux)")
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_data_alone_and_beside_cpu_hogs(case, tmp_path):
    module, argv = CASES[case]
    core = min(os.sched_getaffinity(0))
    times, _ = _generate(module, argv, tmp_path / "unlimited.csv", 600.0, core)
    limit = MARGIN * max(times)
    _generate(module, argv, tmp_path / "alone.csv", limit, core)
    with _cpu_hogs(LOAD, core):
        busy_times, stretch = _generate(module, argv, tmp_path / "busy.csv", limit, core)
    assert stretch > MARGIN * 1.1, (
        f"the hogs stretched the generator's wall-clock time only {stretch:.1f}-fold: "
        "this machine cannot tell a wall-clock limit from a CPU-time limit"
    )
    unlimited, alone, busy = (tmp_path / f"{n}.csv" for n in ("unlimited", "alone", "busy"))
    assert alone.read_bytes() == unlimited.read_bytes(), f"a {limit:.3f} s limit cut rows even alone"
    assert busy.read_bytes() == alone.read_bytes(), (
        f"{case}: the file generated beside CPU hogs differs (limit {limit:.3f} s, slowest factor call "
        f"{max(times):.3f} CPU s alone, {max(busy_times):.3f} CPU s beside the hogs)"
    )


def test_factor_draws_the_same_random_points_in_every_call(monkeypatch):
    """SymPy's multivariate factoring picks random evaluation points: unseeded, the CPU time of one
    expression varies from run to run by orders of magnitude, and a row near the limit flips."""
    from sympy.core import random as sympy_random

    from symlit.qed import generator as gen

    seen = []
    monkeypatch.setattr(sympy, "factor", lambda expr: seen.append(sympy_random.rng.random()) or expr)
    x = sympy.Symbol("x")
    sympy_random.rng.seed(12345)
    state = sympy_random.rng.getstate()
    assert gen.factor_with_timeout(x**2 - 1, 5.0) == (x**2 - 1, True)
    assert sympy_random.rng.getstate() == state  # the caller's random stream is left alone
    sympy_random.rng.random()
    gen.factor_with_timeout(x**2 - 1, 5.0)
    assert seen[0] == seen[1]


def test_cpu_limit_counts_cpu_time_not_sleep():
    with time_limit(0.2, clock="cpu") as token:
        time.sleep(0.4)  # no CPU time: the limit does not fire
    assert token is not None
    with pytest.raises(SampleTimeout), time_limit(0.2, clock="cpu"):
        while True:
            pass
    with pytest.raises(SampleTimeout), time_limit(0.2, clock="wall"):
        time.sleep(0.4)


def test_cpu_and_wall_limits_nest_independently():
    with time_limit(5, clock="wall") as outer:
        with pytest.raises(SampleTimeout) as err, time_limit(0.1, clock="cpu") as inner:
            while True:
                pass
        assert err.value.args[0] is inner and outer is not None
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 5  # the outer wall-clock limit is still armed
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_unknown_clock_is_refused():
    with pytest.raises(ValueError, match="clock"), time_limit(1, clock="sundial"):  # type: ignore[arg-type]
        pass
