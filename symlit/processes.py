"""Worker processes that never outlive their parent.

A worker started by ``multiprocessing`` (generation workers, verifier workers) keeps running when
its parent is killed by ``SIGKILL`` (no cleanup code runs) or ``SIGTERM`` (Python's default
action also skips ``finally`` blocks and ``atexit``): the orphan keeps burning a core beside the
rerun. :func:`die_with_parent`, called first thing in the worker, ties its life to its parent's:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker the moment
  its parent exits, whatever killed the parent and whatever the worker is doing (even stuck in C
  code in SymPy or GMP, where a Python thread could not run);
* elsewhere, a daemon thread polls ``os.getppid()`` every second and exits the process when the
  parent has changed (the worker was re-parented).

The kernel ties the signal to the parent *thread* that created the worker: workers must be started
from a thread that lives as long as the pool (the main thread, in symlit). A forkserver worker's
parent is the fork server, which exits as soon as the main process is gone, so the chain holds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(expected_parent: int | None = None, interval: float = 1.0) -> str:
    """Make the calling process die when its parent does; returns the mechanism used (``pdeathsig``
    or ``watch``). ``expected_parent`` (the parent's pid, when the caller knows it) closes the race
    where the parent dies before this call: the process then exits at once."""
    parent = os.getppid() if expected_parent is None else expected_parent
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        if ok:
            if os.getppid() != parent:  # the parent died before the kernel could be told
                os._exit(1)
            return "pdeathsig"
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, interval), daemon=True, name="watch-parent").start()
    return "watch"


__all__ = ["die_with_parent"]
