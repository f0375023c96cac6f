"""Time limits for SymPy calls that may run for ever (calculus generation and verification, QED/QCD
factoring): the one time-limit helper of symlit.

:func:`time_limit` interrupts the block with :class:`SampleTimeout` after ``seconds``, using an
interval timer: ``ITIMER_REAL``/``SIGALRM`` for wall-clock seconds, ``ITIMER_PROF``/``SIGPROF``
for CPU seconds of the process. It works in the main thread of any process, which is where
generation workers and evaluation workers run their samples; nested limits are honoured (the
outer deadline of the same clock is restored on exit; limits of the two clocks run independently).
Off the main thread, or where the signal does not exist, it cannot interrupt and the caller's
process-level limit must do the job: the generation engine kills and replaces a worker whose chunk
overruns its deadline.

Which clock: a wall-clock limit on a machine shared with other jobs cuts a sample after a fraction
of its CPU time, so it changes *which* results come out. A limit that decides the content of
generated data (the QED/QCD ``factor`` limit) therefore asks for ``clock="cpu"``: the same seed
then gives the same data on a busy machine as on an idle one. CPU time is nearly, not exactly,
independent of load (cache and memory-bandwidth contention slow a process's own instructions a
little), so such a limit should sit well above the CPU time of the expressions it is meant to
keep. Limits that only protect the user's patience may stay wall-clock.

``clock=None`` takes the default of the environment: ``SYMLIT_TIME_LIMITS=cpu`` makes it CPU
seconds (the side-by-side benchmarks against the reference generator use it for both programs),
anything else wall-clock seconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Clock = Literal["wall", "cpu"]

DEFAULT_CLOCK: Clock = "cpu" if os.environ.get("SYMLIT_TIME_LIMITS", "wall") == "cpu" else "wall"
# per clock: (interval timer, its signal, the clock it counts)
_TIMERS = {
    "wall": (getattr(signal, "ITIMER_REAL", None), getattr(signal, "SIGALRM", None), time.monotonic),
    "cpu": (getattr(signal, "ITIMER_PROF", None), getattr(signal, "SIGPROF", None), time.process_time),
}


class SampleTimeout(BaseException):
    """A time-limited block ran out of time.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that the ``except Exception`` blocks inside
    SymPy and around it (e.g. the prefix decoder's) cannot swallow it: a timeout that fired inside
    ``prefix_to_sympy`` used to come out as an ``unsupported`` expression, and one inside a SymPy
    routine that catches ``Exception`` let it run on past its limit."""


def can_interrupt(clock: Clock | None = None) -> bool:
    """Whether :func:`time_limit` with this ``clock`` can interrupt code in the current thread."""
    return _TIMERS[clock or DEFAULT_CLOCK][1] is not None and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, clock: Clock | None = None) -> Iterator[object | None]:
    """Raise :class:`SampleTimeout` inside the block once ``seconds`` have passed.

    ``clock``: ``"wall"`` (real time), ``"cpu"`` (CPU seconds of this process, user and system,
    all threads) or ``None`` (:data:`DEFAULT_CLOCK`, set by ``SYMLIT_TIME_LIMITS``). ``None`` or
    ``<= 0`` seconds means no limit. When an enclosing limit expires first, the enclosing limit's
    exception is raised, as if this block were not there. The block receives a token (``None``
    when no timer was installed); ``owns(err, token)`` tells whether a caught
    :class:`SampleTimeout` is this block's own.
    """
    clock = clock or DEFAULT_CLOCK
    if clock not in _TIMERS:
        raise ValueError(f"clock={clock!r} must be 'wall' or 'cpu'")
    if not seconds or seconds <= 0 or not can_interrupt(clock):
        yield None
        return
    timer, signum, now = _TIMERS[clock]
    outer_remaining, _ = signal.getitimer(timer)
    if outer_remaining and outer_remaining <= seconds:
        yield None  # the enclosing limit fires first and raises its own exception
        return

    token = object()

    def _raise(signum, frame):
        raise SampleTimeout(token)

    previous = signal.signal(signum, _raise)
    start = now()
    signal.setitimer(timer, seconds)
    try:
        yield token
    finally:
        signal.setitimer(timer, 0)
        signal.signal(signum, previous)
        if outer_remaining:
            left = outer_remaining - (now() - start)
            signal.setitimer(timer, max(left, 1e-4))


def owns(err: SampleTimeout, token: object | None) -> bool:
    """Whether ``err`` was raised by the :func:`time_limit` block that yielded ``token``."""
    return token is not None and bool(err.args) and err.args[0] is token
