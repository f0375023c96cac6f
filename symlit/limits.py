"""Time limits for SymPy calls that may run for ever (calculus generation and verification, QED/QCD
factoring): the one time-limit helper of symlit.

:func:`time_limit` interrupts the block with :class:`SampleTimeout` after ``seconds``, using a
real-time interval timer (``SIGALRM``). It works in the main thread of any process, which is
where generation workers and evaluation workers run their samples; nested limits are honoured
(the outer deadline is restored on exit). Off the main thread, or where ``SIGALRM`` does not
exist, it cannot interrupt and the caller's process-level limit must do the job: the generation
engine kills and replaces a worker whose chunk overruns its deadline.

``SYMLIT_TIME_LIMITS=cpu`` in the environment counts the limits in CPU seconds of the process
(``ITIMER_PROF``/``SIGPROF``) instead of wall-clock seconds: on a machine shared with other jobs,
a wall-clock limit cuts a sample after a fraction of its CPU time and changes which samples
survive. The side-by-side benchmarks against the reference generator use it for both programs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

CPU_LIMITS = os.environ.get("SYMLIT_TIME_LIMITS", "wall") == "cpu"
TIMER = getattr(signal, "ITIMER_PROF" if CPU_LIMITS else "ITIMER_REAL", None)
SIGNAL = getattr(signal, "SIGPROF" if CPU_LIMITS else "SIGALRM", None)
_clock = time.process_time if CPU_LIMITS else time.monotonic


class SampleTimeout(BaseException):
    """A time-limited block ran out of time.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that the ``except Exception`` blocks inside
    SymPy and around it (e.g. the prefix decoder's) cannot swallow it: a timeout that fired inside
    ``prefix_to_sympy`` used to come out as an ``unsupported`` expression, and one inside a SymPy
    routine that catches ``Exception`` let it run on past its limit."""


def can_interrupt() -> bool:
    """Whether :func:`time_limit` can interrupt code in the current thread."""
    return SIGNAL is not None and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None) -> Iterator[object | None]:
    """Raise :class:`SampleTimeout` inside the block once ``seconds`` have passed.

    ``None`` or ``<= 0`` means no limit. When an enclosing limit expires first, the enclosing
    limit's exception is raised, as if this block were not there. The block receives a token
    (``None`` when no timer was installed); ``owns(err, token)`` tells whether a caught
    :class:`SampleTimeout` is this block's own.
    """
    if not seconds or seconds <= 0 or not can_interrupt():
        yield None
        return
    outer_remaining, _ = signal.getitimer(TIMER)
    if outer_remaining and outer_remaining <= seconds:
        yield None  # the enclosing limit fires first and raises its own exception
        return

    token = object()

    def _raise(signum, frame):
        raise SampleTimeout(token)

    previous = signal.signal(SIGNAL, _raise)
    start = _clock()
    signal.setitimer(TIMER, seconds)
    try:
        yield token
    finally:
        signal.setitimer(TIMER, 0)
        signal.signal(SIGNAL, previous)
        if outer_remaining:
            left = outer_remaining - (_clock() - start)
            signal.setitimer(TIMER, max(left, 1e-4))


def owns(err: SampleTimeout, token: object | None) -> bool:
    """Whether ``err`` was raised by the :func:`time_limit` block that yielded ``token``."""
    return token is not None and bool(err.args) and err.args[0] is token
