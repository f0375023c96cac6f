"""Sharded generation: one deterministic slice of a dataset per array task, and their merge.

Layout of ``symlit-generate ... n_shards=N`` under ``output_dir``::

    shard-0000/            one array task's directory (only that task writes in it)
      generator.json       the engine's identity: generator settings, shard seed, chunk_attempts
      shards/*.arrow       the engine's resumable Arrow files (each written to a temporary name, renamed);
                           each one's metadata holds its chunk ids, outcome counts and CPU seconds
      shard.json           throughput of each run of this task (wall and CPU seconds, new pairs),
                           written when the run ends: a run killed by SIGKILL or a crash records nothing
    shard-0001/ ...
    dataset/ reference/ summary.json    written by the merge

Shard ``i`` runs the resumable engine (:mod:`symlit.calculus.engine`) with the seed
``"<seed>/shard-<i>"``: its pairs depend on the seed and the shard index only, not on ``N`` (a larger
array keeps the shards already made), the number of workers or the machine (up to time limits, see
the engine). It aims at ``n // N`` distinct equations (one more for the first ``n % N`` shards).
A shard is complete when its chunk prefix holds that many; a rerun of an unfinished one resumes.

Throughput (:meth:`Shard.throughput`, the merge's ``per_shard``) comes from two sources: the runs in
``shard.json`` (wall and CPU time of whole runs, start-up and lost work included, but only of runs
that ended), and the Arrow files' own ``cpu_s`` (the CPU seconds of the chunks each file holds,
see :mod:`symlit.calculus.engine`), which counts the finished files of killed runs too. Files
written by older code have no ``cpu_s``: they count as untimed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symlit.calculus import engine
from symlit.calculus.generators import GeneratorConfig
from symlit.core.atomic import write_text_atomic

log = logging.getLogger(__name__)
STATUS_FILE = "shard.json"
TIMEOUT_CAUSES = ("timeout", "chunk_timeout", "solve_timeout")


def shard_name(index: int) -> str:
    """``shard-0003``: the directory of shard 3."""
    return f"shard-{index:04d}"


def shard_seed(seed: Any, index: int) -> str:
    """The engine seed of shard ``index``: a function of the run's seed and the index only."""
    return f"{seed}/shard-{index}"


def shard_target(n: int, n_shards: int, index: int) -> int:
    """Distinct equations shard ``index`` of ``n_shards`` generates (the targets add up to ``n``)."""
    return n // n_shards + (1 if index < n % n_shards else 0)


def resolve_shard(shard: int | None, n_shards: int) -> int:
    """``shard``, else ``$SLURM_ARRAY_TASK_ID``; an error naming the key and the fix when neither
    is set or the index is outside ``0..n_shards-1``."""
    source = "shard"
    if shard is None:
        env = os.environ.get("SLURM_ARRAY_TASK_ID")
        if env is None:
            raise ValueError(
                f"shard is unset: pass shard=<0..{n_shards - 1}> (one array task), run inside a SLURM job array "
                "(SLURM_ARRAY_TASK_ID), or merge=true to merge the shards"
            )
        try:
            shard, source = int(env), "SLURM_ARRAY_TASK_ID"
        except ValueError:
            raise ValueError(f"SLURM_ARRAY_TASK_ID={env!r} is not an integer; pass shard=<index>") from None
    if not 0 <= shard < n_shards:
        raise ValueError(
            f"{source}={shard} is outside 0..{n_shards - 1} (n_shards={n_shards}); submit --array=0-{n_shards - 1} "
            "or raise n_shards"
        )
    return shard


def _cpu_seconds() -> float:
    t = os.times()  # this process and its waited-for children (the generation workers)
    return t.user + t.system + t.children_user + t.children_system


def _stored_rows(directory: Path) -> int:
    return sum(table.num_rows for table, _ in engine.iter_shards(directory)) if directory.exists() else 0


def generate_shard(
    config: GeneratorConfig,
    out: str | Path,
    index: int,
    n: int,
    n_shards: int,
    seed: Any = 0,
    workers: int = 1,
    shard_size: int = 1000,
    chunk_attempts: int = 16,
    progress: bool = True,
) -> engine.GenerationReport:
    """Generate (or resume) shard ``index`` of ``n_shards`` under ``out`` and record the run's wall
    time, CPU time and new pairs in its ``shard.json`` (written atomically).

    SIGTERM (SLURM before a requeue or at a time limit) stops the run gracefully: the finished chunks
    are written, the run recorded, then the process exits with status 143. A second SIGTERM exits at once."""
    directory = Path(out) / shard_name(index)
    status_path = directory / STATUS_FILE
    status = json.loads(status_path.read_text()) if status_path.exists() else {"runs": []}
    target = shard_target(n, n_shards, index)
    rows0, wall0, cpu0 = _stored_rows(directory), time.monotonic(), _cpu_seconds()

    stopping: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        if stopping:
            raise SystemExit(128 + signum)  # unwinds through the engine (its workers stop) and the finally below
        stopping.append(signum)
        log.warning("shard %d: SIGTERM, writing the finished chunks and stopping", index)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        report = engine.generate(
            config,
            directory,
            target,
            workers=workers,
            seed=shard_seed(seed, index),
            shard_size=shard_size,
            chunk_attempts=chunk_attempts,
            progress=progress,
            stop=lambda: bool(stopping),
        )
        if stopping:
            raise SystemExit(128 + stopping[0])
        return report
    finally:
        signal.signal(signal.SIGTERM, previous)
        if directory.exists():
            distinct = len(engine.unique_rows(engine.prefix_rows(directory, target)))
            run = {
                "host": socket.gethostname(),
                "workers": workers,
                "wall_s": round(time.monotonic() - wall0, 2),
                "cpu_s": round(_cpu_seconds() - cpu0, 2),
                "new_pairs": _stored_rows(directory) - rows0,  # pairs this run stored (duplicates included)
            }
            status.update(shard=index, n_shards=n_shards, target=target, distinct=distinct, complete=distinct >= target)
            status["runs"].append(run)
            write_text_atomic(status_path, json.dumps(status, indent=1))


@dataclass
class Shard:
    """What the merge finds of one shard: ``state`` is ``missing``, ``partial`` or ``complete``."""

    index: int
    path: Path
    target: int
    state: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    distinct: int = 0
    attempts: int = 0
    causes: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    timed_files: int = 0
    pairs_in_files: int = 0
    pairs_in_timed_files: int = 0
    cpu_s_in_files: float = 0.0
    cpu_unmeasured_chunks: int = 0

    def add_file(self, rows: int, meta: dict[str, Any]) -> None:
        """Count one Arrow file of ``rows`` rows with engine metadata ``meta`` into the file figures:
        its outcome counts, and its rows and CPU seconds when it records them (a file without
        ``cpu_s``, from older code, counts as untimed)."""
        for cause, count in meta.get("stats", {}).items():
            self.causes[cause] = self.causes.get(cause, 0) + count
        self.attempts = sum(self.causes.values())
        self.files += 1
        self.pairs_in_files += rows
        cpu = meta.get(engine.CPU_KEY)
        if isinstance(cpu, (int, float)) and not isinstance(cpu, bool):
            self.timed_files += 1
            self.pairs_in_timed_files += rows
            self.cpu_s_in_files += float(cpu)
            self.cpu_unmeasured_chunks += int(meta.get("cpu_unmeasured", 0))

    def describe(self) -> str:
        if self.state == "missing":
            return f"shard {self.index} is missing ({self.path} holds no shards)"
        return f"shard {self.index} is partial ({self.distinct} of {self.target} distinct equations in {self.path})"

    def throughput(self) -> dict[str, Any]:
        """Rows, attempts, timeouts and throughput of this shard, from two sources.

        Per recorded run (``shard.json``; a run killed by SIGKILL or a crash is missing): ``runs``,
        ``pairs_timed`` (the pairs those runs stored), ``wall_s``, ``cpu_s`` (the run's process and
        its workers, start-up included), ``pairs_per_hour`` and ``pairs_per_cpu_hour``.

        Per Arrow file (its own metadata, so a killed run's finished files count): ``files``,
        ``timed_files`` (those recording their CPU seconds), ``pairs_in_files`` (rows of all files,
        duplicates included), ``pairs_in_timed_files``, ``cpu_s_in_files`` (the CPU seconds of the
        chunks of the timed files, chunks abandoned at their deadline or lost with their worker
        included; worker start-up outside a chunk and work that never reached a file are not counted),
        ``pairs_per_cpu_hour_in_files`` (``None`` without timed CPU) and
        ``cpu_unmeasured_chunks`` (chunks of timed files whose CPU could not be read). Files written
        by older code hold no CPU field: they count in ``files`` and ``pairs_in_files`` only, as
        untimed. Pair rates are ``None`` where no time was recorded."""
        pairs = sum(r["new_pairs"] for r in self.runs)
        wall = sum(r["wall_s"] for r in self.runs)
        cpu = sum(r["cpu_s"] for r in self.runs)
        cpu_files = self.cpu_s_in_files
        rate_files = round(3600 * self.pairs_in_timed_files / cpu_files, 1) if cpu_files else None
        return {
            "shard": self.index,
            "state": self.state,
            "distinct": self.distinct,
            "target": self.target,
            "attempts": self.attempts,
            "timeouts": sum(self.causes.get(c, 0) for c in TIMEOUT_CAUSES),
            "runs": len(self.runs),
            "pairs_timed": pairs,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "pairs_per_hour": round(3600 * pairs / wall, 1) if wall else None,
            "pairs_per_cpu_hour": round(3600 * pairs / cpu, 1) if cpu else None,
            "files": self.files,
            "timed_files": self.timed_files,
            "pairs_in_files": self.pairs_in_files,
            "pairs_in_timed_files": self.pairs_in_timed_files,
            "cpu_s_in_files": round(cpu_files, 2),
            "pairs_per_cpu_hour_in_files": rate_files,
            "cpu_unmeasured_chunks": self.cpu_unmeasured_chunks,
        }


def read_shard(out: str | Path, index: int, n: int, n_shards: int, identity: dict[str, Any]) -> Shard:
    """Shard ``index``'s chunk prefix (cut at its target) and records; ``identity`` is the engine's
    ``generator.json`` the merge expects without the seed (an error names the shard that differs)."""
    directory = Path(out) / shard_name(index)
    target = shard_target(n, n_shards, index)
    config_path = directory / engine.CONFIG_FILE
    if not config_path.exists():
        return Shard(index, directory, target, "missing")
    saved = json.loads(config_path.read_text())
    expected = json.loads(json.dumps({**identity, "seed": shard_seed(identity["seed"], index)}))
    if saved != expected:
        keys = sorted(
            k
            for k in set(saved.get("config", {})) | set(expected["config"])
            if saved.get("config", {}).get(k) != expected["config"].get(k)
        )
        keys += [k for k in ("seed", "chunk_attempts") if saved.get(k) != expected[k]]
        raise ValueError(
            f"{config_path} was generated with other settings ({', '.join(keys) or 'format'} differ); "
            "merge with the settings (data.task.*, seed, chunk_attempts) of the command that generated the shards"
        )
    rows = engine.prefix_rows(directory, target)
    shard = Shard(index, directory, target, "partial", rows=rows, distinct=len(engine.unique_rows(rows)))
    for table, meta in engine.iter_shards(directory):
        shard.add_file(table.num_rows, meta)
    status_path = directory / STATUS_FILE
    if status_path.exists():
        shard.runs = json.loads(status_path.read_text()).get("runs", [])
    if shard.distinct >= target:
        shard.state = "complete"
    return shard


def collect(
    out: str | Path, n: int, n_shards: int, identity: dict[str, Any], allow_partial: bool = False
) -> tuple[list[dict[str, Any]], list[Shard]]:
    """The rows of every shard, in shard order (duplicates across shards kept: :func:`engine.split`
    removes them), and the shards. A missing or partial shard is an error naming it, or with
    ``allow_partial`` a warning, and its rows (if any) are merged."""
    shards = [read_shard(out, i, n, n_shards, identity) for i in range(n_shards)]
    unfinished = [s for s in shards if s.state != "complete"]
    if unfinished:
        named = "; ".join(s.describe() for s in unfinished[:10])
        more = f"; and {len(unfinished) - 10} more" if len(unfinished) > 10 else ""
        if not allow_partial:
            indices = ",".join(str(s.index) for s in unfinished[:10])
            raise ValueError(
                f"{len(unfinished)} of {n_shards} shards are not finished: {named}{more}. Run them (the same "
                f"command with shard={indices}, or resubmit those array tasks), or merge what is done with "
                "allow_partial=true"
            )
        log.warning(
            "merging %d of %d shards finished (allow_partial=true): %s%s",
            n_shards - len(unfinished),
            n_shards,
            named,
            more,
        )
    rows = [row for s in shards for row in s.rows]
    return rows, shards


__all__ = [
    "Shard",
    "collect",
    "generate_shard",
    "read_shard",
    "resolve_shard",
    "shard_name",
    "shard_seed",
    "shard_target",
]
