"""Worker processes that never outlive their parent.

A worker started by ``multiprocessing`` (generation workers, verifier workers) keeps running when
its parent is killed by ``SIGKILL`` (no cleanup code runs) or ``SIGTERM`` (Python's default
action also skips ``finally`` blocks and ``atexit``): the orphan keeps burning a core beside the
rerun. :func:`die_with_parent`, called first thing in the worker, ties its life to its parent's:

* when the owner is the worker's parent (``spawn``, ``fork``) on Linux,
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker the moment its parent
  exits, whatever killed the parent and whatever the worker is doing (even stuck in C code in
  SymPy or GMP, where a Python thread could not run). The kernel ties the signal to the parent
  *thread* that created the worker: pools are started from the main thread in symlit;
* when the owner is not the parent (a ``forkserver`` worker is the fork server's child, and the
  fork server does not exit while its children hold its "alive" pipe, so it would never die
  either), or off Linux, a daemon thread waits for the owner to exit (``pidfd_open`` + ``select``
  where available, else polling every second) and ends the worker with ``os._exit``.

:class:`PipeWorker` is the parent's side of such a worker serving requests over a pipe.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch(owner: int, interval: float) -> None:
    try:
        fd = os.pidfd_open(owner)  # readable once the owner has exited (zombie or not)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os._exit(1)
    while True:
        time.sleep(interval)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # pragma: no cover - the pid was reused by another user's process
            os._exit(1)


def die_with_parent(owner: int | None = None, interval: float = 1.0) -> str:
    """Make the calling process die when ``owner`` (default: its parent) exits; returns the
    mechanism used (``pdeathsig`` or ``watch``). Give ``owner`` (the pool owner's pid, passed
    to the worker) whenever the caller knows it: it also closes the race where the owner dies
    before this call (the process then exits at once)."""
    parent = os.getppid()
    if owner is not None and owner != parent:  # e.g. a forkserver worker
        _exit_if_gone(owner)
        threading.Thread(target=_watch, args=(owner, interval), daemon=True, name="watch-owner").start()
        return "watch"
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
    threading.Thread(target=_watch, args=(parent, interval), daemon=True, name="watch-parent").start()
    return "watch"


def loader_worker_init(worker_id: int, owner: int) -> None:
    """A DataLoader ``worker_init_fn`` (bind ``owner``, the loader's process, with
    ``functools.partial``): the worker dies with its owner (:func:`die_with_parent`) at once,
    rather than at torch's own next parent check, which runs only between batches."""
    die_with_parent(owner)


class PipeWorker:
    """A worker process that serves requests over a pipe, seen from its owner (generation and
    verifier workers): subclasses add the requests and their bookkeeping.

    ``target(conn, *args, owner)`` runs in a daemon process started from the multiprocessing
    context ``ctx``, with ``conn`` its end of a :func:`~multiprocessing.Pipe` and ``owner`` the pid
    of the process creating the worker (for :func:`die_with_parent`); it should return when it
    receives ``None`` or the pipe closes. :attr:`conn` is the owner's end; :attr:`deadline` is a
    :func:`time.monotonic` time the owner sets for the request in progress."""

    def __init__(self, ctx: Any, target: Callable[..., None], *args: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.deadline = 0.0

    def stop(self, kill: bool = False) -> None:
        """End the process and close the pipe: ask it to return (``None`` on the pipe; killed
        when the pipe is broken) or, with ``kill`` (e.g. stuck in a request), kill it at once; a
        process still alive 5 s later is killed."""
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _exit_if_gone(pid: int) -> None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass


__all__ = ["PipeWorker", "die_with_parent"]
