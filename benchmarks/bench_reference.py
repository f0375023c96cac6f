"""Run Lample & Charton's reference generator for a fixed time, for side-by-side comparisons.

The reference (github.com/facebookresearch/SymbolicMathematics) is NOT part of symlit: check it
out anywhere and give its root on the command line; it is imported from there. It needs numpy,
sympy, torch and numexpr, and runs on Python 3.11 after ``inspect.getargspec =
inspect.getfullargspec``. Settings: its README's (max_ops 15, max_int 5, positive, leaf_probs
0.75,0,0.25,0, its operator weights, max_len 512)::

    python benchmarks/bench_reference.py REF_ROOT TASK SECONDS OUT_FILE [SEED]

writes one raw pair per generated sample (``input<TAB>output``, duplicates kept, like its
``data.prefix`` export) and prints pairs per wall second and per CPU second. With
``SYMLIT_TIME_LIMITS=cpu`` its per-sample ``@timeout`` limits count CPU seconds (as symlit's do
under the same variable), so that a contended machine does not change which samples survive.
Compare with ``bench_generate.py --write DIR`` run at the same time, then
``bench_generate.py --compare-distribution OUT_FILE --symlit DIR/TASK.symlit``.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import os
import signal
import sys
import time
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")
REFERENCE_README = argparse.Namespace(
    operators="add:10,sub:3,mul:10,div:5,sqrt:4,pow2:4,pow3:2,pow4:1,pow5:1,ln:4,exp:4,sin:4,cos:4,tan:4,asin:1,acos:1,"
    "atan:1,sinh:1,cosh:1,tanh:1,asinh:1,acosh:1,atanh:1",
    max_ops=15,
    max_ops_G=4,
    max_int=5,
    int_base=10,
    balanced=False,
    precision=10,
    positive=True,
    rewrite_functions="",
    leaf_probs="0.75,0,0.25,0",
    n_variables=1,
    n_coefficients=0,
    clean_prefix_expr=True,
    max_len=512,
)


def _cpu_time_alarms(ref_utils: types.ModuleType) -> None:
    """Make the reference's ``@timeout`` (``signal.alarm``, wall clock) count CPU seconds instead."""
    shim = types.SimpleNamespace(**{k: getattr(signal, k) for k in dir(signal) if not k.startswith("__")})
    shim.SIGALRM = signal.SIGPROF

    def alarm(seconds: int) -> int:
        old = signal.getitimer(signal.ITIMER_PROF)[0]
        signal.setitimer(signal.ITIMER_PROF, seconds)
        return math.ceil(old) if old else 0

    shim.alarm = alarm
    ref_utils.signal = shim


def main() -> int:
    ref, task, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    inspect.getargspec = inspect.getfullargspec  # removed in Python 3.11, used by the reference
    sys.path.insert(0, ref)
    import numpy as np
    import src.utils as ref_utils
    from src.envs.char_sp import CharSPEnvironment
    from sympy.core.cache import clear_cache

    if os.environ.get("SYMLIT_TIME_LIMITS") == "cpu":
        _cpu_time_alarms(ref_utils)
    env = CharSPEnvironment(REFERENCE_README)
    env.worker_id = 0
    rng = np.random.RandomState(seed)
    generate = {
        "prim_fwd": env.gen_prim_fwd,
        "prim_bwd": lambda r: env.gen_prim_bwd(r, predict_primitive=True),
        "prim_ibp": env.gen_prim_ibp,
        "ode1": env.gen_ode1,
        "ode2": env.gen_ode2,
    }[task]
    logging.disable(logging.CRITICAL)
    n = attempts = 0
    start, cpu_start = time.monotonic(), time.process_time()
    with open(out, "w") as f:
        while time.monotonic() - start < seconds:
            attempts += 1
            try:
                xy = generate(rng)
            # the reference's own loop skips every failure; its TimeoutError is a BaseException
            except (Exception, ref_utils.TimeoutError):  # noqa: BLE001
                continue
            if xy is None:
                continue
            f.write(" ".join(xy[0]) + "\t" + " ".join(xy[1]) + "\n")
            n += 1
            if n % 10000 == 0:
                clear_cache()  # as the reference does
    wall, cpu = time.monotonic() - start, time.process_time() - cpu_start
    print(
        f"reference {task}: {n} pairs, {attempts} attempts, {wall:.1f} s wall, {cpu:.1f} s cpu, "
        f"{n / wall:.3f} eq/s wall, {n / cpu:.3f} eq/s cpu",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
