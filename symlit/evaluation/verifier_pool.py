"""Run a task's verifier on many hypotheses in worker processes, with a time limit per hypothesis.

SymPy can hang on an innocent-looking expression (a ``simplify`` that never returns, a huge
power expanded). Evaluation must finish anyway: every hypothesis gets ``timeout`` seconds in a
worker process; a worker that overruns is killed, the hypothesis is counted as ``"timeout"``,
and a fresh worker takes its place. Workers die with their parent, however it is killed
(:func:`symlit.core.processes.die_with_parent`). With ``workers=0`` verification runs in this process with no
time limit (for fast verifiers such as integer arithmetic).

A verdict is one of :data:`VERDICTS`; only ``"correct"`` counts as a correct answer.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from symlit.core.processes import PipeWorker, die_with_parent
from symlit.tasks.base import Task, Verdict

VERDICTS = ("correct", "wrong", "malformed", "error", "timeout", "no_eos")
"""The task's :class:`~symlit.tasks.base.Verdict` status (``correct``, ``wrong``, ``malformed``), or
``error`` (the verifier raised), ``timeout`` (killed after the time limit), ``no_eos`` (the
hypothesis never ended: not verified)."""


@dataclass
class Check:
    """One verification job: is ``hypothesis`` a right answer for ``source`` (reference ``target``)?

    ``with_scores`` also computes the task's extra scores (:meth:`Task.scores`).
    """

    source: str
    target: str
    hypothesis: str | None
    with_scores: bool = False


@dataclass
class Outcome:
    """A verdict of :data:`VERDICTS`, the method that decided it, the task's extra scores, and the
    verifier's error (``error`` and ``timeout`` verdicts)."""

    verdict: str
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""
    method: str = ""


def run_check(task: Task, check: Check) -> Outcome:
    """Verify one hypothesis in this process; exceptions become the ``error`` verdict."""
    if check.hypothesis is None:
        return Outcome("no_eos")
    try:
        verdict = task.verify(check.source, check.target, check.hypothesis)
        if not isinstance(verdict, Verdict):  # a task written before verdicts: a plain bool
            verdict = Verdict.of(bool(verdict), "verify")
        scores = task.scores(check.source, check.target, check.hypothesis, verdict) if check.with_scores else {}
    except Exception as err:  # noqa: BLE001 - a verifier bug must not stop evaluation: counted as "error"
        return Outcome("error", error=f"{type(err).__name__}: {err}"[:300])
    return Outcome(verdict.status, scores, verdict.detail[:300], verdict.method)


def _worker_main(conn: Connection, task_blob: bytes, owner: int) -> None:
    die_with_parent(owner)  # owner: the process verifying (with forkserver, not this worker's parent)
    task = pickle.loads(task_blob)
    conn.send("ready")  # time limits start once the task (and the modules it needs) is loaded
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        index, check = job
        conn.send((index, run_check(task, check)))


class _Worker(PipeWorker):
    def __init__(self, ctx: Any, task_blob: bytes) -> None:
        super().__init__(ctx, _worker_main, task_blob)
        self.job: int | None = None
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        try:
            ok = self.conn.poll(timeout) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            self.process.join(timeout=5)
            raise RuntimeError(
                f"a verifier process exited while starting (exit code {self.process.exitcode}); "
                "its error is printed above (is the task picklable and importable?)"
            ) from None
        if not ok:
            raise RuntimeError(f"a verifier process did not start within {timeout:g} s")
        self.ready = True


class VerifierPool:
    """A pool of verifier processes for one task.

    Use as a context manager, or call :meth:`close`. ``timeout`` is wall-clock seconds per
    hypothesis; ``start_method`` is a :mod:`multiprocessing` start method (``forkserver`` by default:
    workers start from a clean process, not a copy of a trainer with threads and CUDA state).
    """

    def __init__(self, task: Task, workers: int = 2, timeout: float = 10.0, start_method: str = "forkserver") -> None:
        if workers < 0:
            raise ValueError(f"verify.workers={workers} must be >= 0 (0 = verify in this process, no time limit)")
        if timeout <= 0:
            raise ValueError(f"verify.timeout={timeout} must be > 0 seconds")
        self.task, self.n_workers, self.timeout = task, workers, timeout
        self.timeouts = 0
        self._ctx = mp.get_context(start_method) if workers else None
        if start_method == "forkserver" and workers:  # workers fork with the task's modules imported
            self._ctx.set_forkserver_preload(["symlit.tasks", type(task).__module__])
        self._blob = pickle.dumps(task) if workers else b""
        self._workers: list[_Worker] = []

    STARTUP_TIMEOUT = 300.0

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self._blob)

    def verify(self, checks: list[Check]) -> list[Outcome]:
        """Outcomes in the order of ``checks``."""
        if not self.n_workers:
            return [run_check(self.task, c) for c in checks]
        results: list[Outcome | None] = [None] * len(checks)
        pending = deque(i for i, c in enumerate(checks) if c.hypothesis is not None)
        for i, c in enumerate(checks):
            if c.hypothesis is None:
                results[i] = Outcome("no_eos")
        while len(self._workers) < min(self.n_workers, len(pending)):
            self._workers.append(self._spawn())
        for worker in self._workers:
            worker.wait_ready(self.STARTUP_TIMEOUT)
        busy: dict[Connection, _Worker] = {}
        while pending or busy:
            for worker in list(self._workers):
                if worker.job is None and pending:
                    job = pending.popleft()
                    try:
                        worker.conn.send((job, checks[job]))
                    except (BrokenPipeError, OSError):  # died while idle: replace it, retry the job
                        pending.appendleft(job)
                        self._replace(worker)
                        continue
                    worker.job, worker.deadline = job, time.monotonic() + self.timeout
                    busy[worker.conn] = worker
            if not busy:
                break
            wait_for = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
            for conn in wait(list(busy), timeout=wait_for):
                worker = busy.pop(conn)
                try:
                    index, outcome = conn.recv()
                except (EOFError, OSError):  # the worker died (e.g. out of memory): count it, replace it
                    index, outcome = worker.job, Outcome("error", error="verifier process died")
                    self._replace(worker)
                results[index] = outcome
                worker.job = None
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                if worker.deadline <= now:
                    del busy[conn]
                    results[worker.job] = Outcome("timeout", error=f"no answer within {self.timeout:g} s")
                    self.timeouts += 1
                    self._replace(worker)
        return [r if r is not None else Outcome("error", error="not verified") for r in results]

    def _replace(self, worker: _Worker) -> None:
        worker.stop(kill=True)
        fresh = self._spawn()
        fresh.wait_ready(self.STARTUP_TIMEOUT)
        self._workers[self._workers.index(worker)] = fresh

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
