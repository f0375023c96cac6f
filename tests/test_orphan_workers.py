"""No worker outlives its parent: killing ``symlit-generate`` or a verifier pool's owner leaves no child.

Deterministic: each parent is killed once its workers are provably busy (a long chunk of
generation running, a verification under way), never after a sleep; then we wait, bounded, for
every process that was its descendant to be gone. Without ``die_with_parent`` the busy workers
would run on for minutes (generation) or for ever (the verification below).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
ROOT = Path(__file__).resolve().parents[1]
START_LIMIT = 600.0  # a loaded machine took minutes to start Python and its workers
DEATH_LIMIT = 120.0  # orphans are killed at once; without the fix busy workers run on for many minutes


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process; ``None`` when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return None if state in ("Z", "X") else (state, int(ppid))


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = st[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _wait_for(condition, what: str, limit: float = START_LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {limit:g} s for {what}")
        time.sleep(0.1)


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *extra.pop("paths", "").split(os.pathsep)]).rstrip(os.pathsep),
    }
    return {**env, **extra}


def _kill_and_check(proc: subprocess.Popen, sig: int, workers: set[int]) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=START_LIMIT)
    _wait_for(
        lambda: not any(_stat(p) for p in workers), f"workers {sorted(workers)} to die with their parent", DEATH_LIMIT
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_symlit_generate_workers_die_with_it(tmp_path, sig):
    out = tmp_path / "gen"
    exe = shutil.which("symlit-generate")
    cmd = [exe] if exe else [sys.executable, "-m", "symlit.data.generate"]
    # one chunk = 100,000 attempts: the workers stay busy for many minutes once started
    proc = subprocess.Popen(
        [
            *cmd,
            "data=prim_bwd",
            "n=100000",
            "workers=2",
            "chunk_attempts=100000",
            f"output_dir={out}",
            "progress=false",
            "data.task.fast=true",
            "data.task.max_ops=4",
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers: set[int] = set()

        def busy() -> bool:  # the run has written its identity and started both workers
            assert proc.poll() is None, "symlit-generate exited early"
            workers.update(
                p for p in _descendants(proc.pid) if "_worker_main" in _cmdline(p) or "spawn_main" in _cmdline(p)
            )
            return (out / "generator.json").exists() and len(workers) >= 2

        _wait_for(busy, "symlit-generate to start its workers")
        _kill_and_check(proc, sig, _descendants(proc.pid) | workers)
    finally:
        if proc.poll() is None:
            proc.kill()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _kill_busy_workers(tmp_path: Path, module: str, code: str, script: str, what: str) -> None:
    """Run ``script`` (``module``.py holding ``code`` is importable; ``MARKS`` in both is the path
    of a directory) until two of its worker processes have each touched a file named by its pid
    there, i.e. both are busy; then SIGKILL the script and wait, bounded, for the workers to die."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(code).replace("MARKS", repr(str(marks))))
    script = textwrap.dedent(script).replace("MARKS", repr(str(marks)))
    proc = subprocess.Popen([sys.executable, "-c", script], env=_env(paths=str(tmp_path)))
    try:

        def busy() -> bool:
            assert proc.poll() is None, f"the {what} process exited early"
            return len(list(marks.iterdir())) >= 2

        _wait_for(busy, f"two {what} workers to be busy")
        workers = {int(p.name) for p in marks.iterdir()}
        assert workers <= _descendants(proc.pid)
        _kill_and_check(proc, signal.SIGKILL, _descendants(proc.pid) | workers)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_verifier_pool_workers_die_with_their_parent(tmp_path):
    # a task whose verification never ends, so the workers are busy when the parent is killed
    slow_task = """
        import os, time
        from pathlib import Path
        from symlit.tasks.base import Task

        class SlowTask(Task):
            def build(self): return {}
            def verify(self, source, target, hypothesis):
                Path(MARKS, str(os.getpid())).touch()
                while True:
                    time.sleep(1)
    """
    script = """
        from slow_task import SlowTask
        from symlit.evaluation.verifier_pool import Check, VerifierPool
        pool = VerifierPool(SlowTask(), workers=2, timeout=10**6)
        pool.verify([Check("a", "a", "b"), Check("c", "c", "d")])
    """
    _kill_busy_workers(tmp_path, "slow_task", slow_task, script, "verifier")


def test_data_loader_workers_die_with_their_parent(tmp_path):
    """A data-loader worker inside a long ``__getitem__`` (torch's own parent check runs only
    between batches) dies at once when the process that iterates the loader is killed."""
    slow_rows = """
        import os, time
        from pathlib import Path
        import torch

        class SlowRows(torch.utils.data.Dataset):
            def __len__(self): return 4
            def __getitem__(self, i):
                Path(MARKS, str(os.getpid())).touch()
                while True:
                    time.sleep(1)
    """
    script = """
        import numpy as np
        from slow_rows import SlowRows
        from symlit.data.datamodule import EpochBatchSampler, ResumableDataLoader
        sampler = EpochBatchSampler(np.ones(4, dtype=int), 1, shuffle=False, seed=0, bucket=False)
        loader = ResumableDataLoader(SlowRows(), batch_sampler=sampler, num_workers=2)
        next(iter(loader))
    """
    _kill_busy_workers(tmp_path, "slow_rows", slow_rows, script, "data-loader")


def test_amplitude_generator_pool_workers_die_with_their_parent(tmp_path):
    """The fork pool of the QED and QCD generators (:func:`symlit.qed.generator.run_processes`)."""
    slow_job = """
        import os, time
        from pathlib import Path

        def generate_one(k, engine=None):
            Path(MARKS, str(os.getpid())).touch()
            while True:
                time.sleep(1)
    """
    script = """
        from slow_job import generate_one
        from symlit.qed.generator import run_processes
        run_processes(generate_one, [(0,), (1,)], workers=2)
    """
    _kill_busy_workers(tmp_path, "slow_job", slow_job, script, "generator")
