"""The generation engine behind ``symlit-generate`` and :class:`~symlit.tasks.calculus.CalculusTask`.

Work is cut into *chunks* (``chunk_attempts`` tries seeded by ``(seed, chunk id)``) run by worker
processes. Accepted samples are appended to Arrow *shards* (``<out>/shards/shard-NNNNNN.arrow``),
each written to a temporary name and renamed when complete. Its schema metadata (``META_KEY``, JSON)
holds ``chunks`` (the chunk ids it holds), ``stats`` (the count of each outcome of their tries) and
``cpu_s``, the CPU seconds spent generating those chunks (see *CPU seconds* below). Rerunning with
the same output directory reads the shards back and carries on with the missing chunk ids: an
interrupted run loses at most the shard being filled.

The data of a directory is its *chunk prefix*: the rows of chunks ``0, 1, 2, ...`` in order, up to
the first chunk not yet done, cut after the ``n``-th distinct source (:func:`prefix_rows`). A run
stops once that prefix holds ``n`` distinct sources, so the rows do not depend on how many workers
ran or in which order their chunks finished (chunks are seeded by ``(seed, chunk id)``). The
exceptions are machine-dependent by nature: a try cut by its time limit, and ``prim_ibp``, whose
primitive cache carries over from chunk to chunk inside one process (deterministic with at most
one worker and an uninterrupted run).

Time limits: each try runs under a per-sample limit inside its worker (``SIGALRM`` in the
worker's main thread, see :mod:`symlit.core.limits`); a worker whose chunk overruns its
deadline anyway (stuck in C code) is killed and replaced, and the chunk counted as
``chunk_timeout``. The deadline counts the clock of the per-sample limits: with
``SYMLIT_TIME_LIMITS=cpu``, the worker's own CPU seconds, so a worker starved by a busy machine
(or by ``nice``) is never cut short. A worker that dies is replaced too (``worker_died``). Nothing stalls the run.
Workers die with the run (:func:`symlit.core.processes.die_with_parent`), even when it is killed by
``SIGKILL`` or ``SIGTERM``.

CPU seconds (``cpu_s``): a file records what its own chunks cost, so the files of a run that was
killed (and never recorded its run totals) still say what they cost. A finished chunk counts the
:func:`time.process_time` of the process that ran it (the worker, or this process with
``workers=0``) around its tries. A chunk abandoned at its deadline (``chunk_timeout``) or lost with
its worker (``worker_died``) counts the worker's CPU clock (``/proc``, read before the worker is
reaped) from when the chunk was handed over: for a freshly started worker that includes the end of
its start-up. Where that clock cannot be read (no ``/proc``), the chunk adds nothing and is counted
in ``cpu_unmeasured`` (present only when not zero). Not counted in any file: worker start-up
outside a chunk, this process's bookkeeping and writing, and the work that never reaches a file
(the chunks in flight or not yet written when a run stops or is killed). Files written before this
field existed have no ``cpu_s``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import pyarrow as pa

from symlit.calculus.generators import Generator, GeneratorConfig, generate_chunk
from symlit.core.atomic import DirectoryLock, write_text_atomic
from symlit.core.processes import PipeWorker, die_with_parent

log = logging.getLogger(__name__)
SCHEMA = pa.schema([("source", pa.string()), ("target", pa.string()), ("n_ops", pa.int32()), ("chunk", pa.int64())])
META_KEY = b"symlit.calculus"
CPU_KEY = "cpu_s"  # in a file's metadata: the CPU seconds of its chunks (absent in files of older code)
CONFIG_FILE = "generator.json"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=10).digest()


@dataclass
class GenerationReport:
    """What a generation run produced (cumulated over resumed runs)."""

    unique: int = 0
    accepted: int = 0
    attempts: int = 0
    causes: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    seconds: float = 0.0
    new_accepted: int = 0

    def add(self, stats: dict[str, int]) -> None:
        for cause, count in stats.items():
            self.causes[cause] = self.causes.get(cause, 0) + count
            self.attempts += count
            if cause == "ok":
                self.accepted += count

    def summary(self) -> str:
        """Human-readable totals and the rejections by cause."""
        rejected = {k: v for k, v in self.causes.items() if k != "ok"}
        lines = [
            f"attempts {self.attempts}, accepted {self.accepted}, unique sources {self.unique}, "
            f"shards {self.shards}, {self.seconds:.1f} s this run"
        ]
        if self.seconds > 0:
            lines.append(f"throughput this run: {self.new_accepted / self.seconds:.2f} accepted equations/s")
        if rejected:
            lines.append("rejections by cause:")
            total = max(self.attempts, 1)
            for cause, count in sorted(rejected.items(), key=lambda kv: -kv[1]):
                lines.append(f"  {cause:<24} {count:>9}  ({100 * count / total:.1f} % of attempts)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- shards
def _write_shard(
    directory: Path,
    index: int,
    rows: list[dict[str, Any]],
    chunks: list[int],
    stats: dict[str, int],
    cpu_s: float,
    cpu_unmeasured: int = 0,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {"chunks": sorted(chunks), "stats": stats, CPU_KEY: round(cpu_s, 3)}
    if cpu_unmeasured:
        fields["cpu_unmeasured"] = cpu_unmeasured
    meta = {META_KEY: json.dumps(fields).encode()}
    table = pa.Table.from_pylist(rows, schema=SCHEMA.with_metadata(meta))
    final = directory / f"shard-{index:06d}.arrow"
    tmp = directory / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def iter_shards(out_dir: str | Path) -> Iterator[tuple[pa.Table, dict[str, Any]]]:
    """Each complete shard's table and metadata (chunk ids, stats, CPU seconds when recorded), in shard order."""
    directory = Path(out_dir) / "shards"
    for path in sorted(directory.glob("shard-*.arrow")):
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(
                f"shard {path} is unreadable ({err}); delete it and rerun to regenerate its chunks"
            ) from None
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        yield table, meta


def read_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every generated row of an output directory, ordered by chunk id (duplicates included)."""
    rows = []
    for table, _ in iter_shards(out_dir):
        rows.extend(table.to_pylist())
    rows.sort(key=lambda r: r["chunk"])  # stable: keeps the order inside a chunk
    return rows


def prefix_rows(out_dir: str | Path, n_unique: int) -> list[dict[str, Any]]:
    """The directory's data for ``n_unique`` distinct sources: the rows of chunks ``0, 1, ...`` up
    to the first chunk not done, in order, cut after the row holding the ``n_unique``-th distinct
    source (duplicates included). Fewer distinct sources when the prefix holds fewer."""
    by_chunk: dict[int, list[dict[str, Any]]] = {}
    for table, meta in iter_shards(out_dir):
        for chunk in meta.get("chunks", []):
            by_chunk.setdefault(chunk, [])
        for row in table.to_pylist():
            by_chunk.setdefault(row["chunk"], []).append(row)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    chunk = 0
    while chunk in by_chunk and len(seen) < n_unique:
        for row in by_chunk[chunk]:
            rows.append(row)
            seen.add(row["source"])
            if len(seen) >= n_unique:
                break
        chunk += 1
    return rows


def unique_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """First row of each distinct source, with ``count`` = the sum of the counts of the rows holding
    that source (a row without ``count``, e.g. a generated one, counts 1; a reference-format line
    keeps its own count)."""
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        count = int(row.get("count") or 1)
        kept = first.get(row["source"])
        if kept is None:
            first[row["source"]] = {**row, "count": count}
        else:
            kept["count"] += count
    return list(first.values())


# ---------------------------------------------------------------------------- workers
def _worker_main(conn: Connection, config: dict[str, Any], parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    generator = Generator(GeneratorConfig(**config))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        chunk, seed, attempts = msg
        cpu0 = time.process_time()
        samples, stats = generate_chunk(generator.config, seed, attempts, generator=generator)
        conn.send((chunk, samples, stats, time.process_time() - cpu0))


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (``/proc``, Linux), ``None`` when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _Worker(PipeWorker):
    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, _worker_main, config)
        self.chunk: int | None = None
        self.cpu_start: float | None = None
        self.cpu_at_chunk: float | None = None

    def start_chunk(self, chunk: int, timeout: float) -> None:
        self.chunk = chunk
        self.deadline = time.monotonic() + timeout
        cpu_limits = os.environ.get("SYMLIT_TIME_LIMITS") == "cpu"  # the workers' per-sample clock (symlit.core.limits)
        self.cpu_at_chunk = _cpu_seconds(self.process.pid)
        self.cpu_start = self.cpu_at_chunk if cpu_limits else None

    def chunk_cpu(self) -> float | None:
        """The worker's CPU seconds since its chunk was handed over, ``None`` when ``/proc`` does not
        tell them; call it before the worker is reaped (a dead, unreaped worker still tells them)."""
        now = _cpu_seconds(self.process.pid)
        if now is None or self.cpu_at_chunk is None or now < self.cpu_at_chunk:
            return None
        return now - self.cpu_at_chunk

    def remaining(self, timeout: float) -> float:
        """Seconds left before the chunk overruns ``timeout`` (negative: overrun): the worker's CPU
        seconds when the per-sample limits count CPU time (and /proc tells them), else wall-clock
        seconds. Never more than the wall-clock seconds until then."""
        if self.cpu_start is not None:
            now = _cpu_seconds(self.process.pid)
            if now is not None:
                return timeout - (now - self.cpu_start)
        return self.deadline - time.monotonic()


def _chunk_seed(seed: Any, chunk: int) -> str:
    return f"{seed}/{chunk}"


def generate(
    config: GeneratorConfig,
    out_dir: str | Path,
    n_unique: int,
    workers: int = 1,
    seed: Any = 0,
    shard_size: int = 1000,
    chunk_attempts: int = 16,
    chunk_timeout: float | None = None,
    progress: bool = True,
    max_attempts: int | None = None,
    flush_seconds: float = 60.0,
    stop: Callable[[], bool] | None = None,
) -> GenerationReport:
    """Generate into ``out_dir`` until it holds ``n_unique`` distinct sources (resuming what is there).

    A shard is written every ``shard_size`` rows or ``flush_seconds``, whichever comes first (so a
    slow generator loses at most a minute of work when interrupted). ``workers=0`` runs in this
    process (per-sample limits need the main thread). ``max_attempts`` (default
    ``max(1000, 200 * n_unique)``) stops a configuration that accepts almost nothing. ``stop()``
    true ends the run early, keeping every finished chunk (checked after each chunk, and at least
    every 5 s with workers; e.g. set by a SIGTERM handler).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(out, "symlit-generate run"):
        return _generate(
            config,
            out,
            n_unique,
            workers,
            seed,
            shard_size,
            chunk_attempts,
            chunk_timeout,
            progress,
            max_attempts,
            flush_seconds,
            stop,
        )


def _generate(
    config: GeneratorConfig,
    out: Path,
    n_unique: int,
    workers: int,
    seed: Any,
    shard_size: int,
    chunk_attempts: int,
    chunk_timeout: float | None,
    progress: bool,
    max_attempts: int | None,
    flush_seconds: float,
    stop: Callable[[], bool] | None,
) -> GenerationReport:
    identity = {"config": config.to_dict(), "seed": str(seed), "chunk_attempts": chunk_attempts}
    config_path = out / CONFIG_FILE
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        if saved != json.loads(json.dumps(identity)):
            raise ValueError(
                f"{out} holds shards generated with another configuration ({config_path}); "
                "choose another output directory or delete it"
            )
    else:
        write_text_atomic(config_path, json.dumps(identity, indent=1))  # a kill leaves none or all of it

    report = GenerationReport()
    seen: set[bytes] = set()
    done: set[int] = set()
    # the distinct sources of the chunk prefix (chunks 0..prefix_end-1, all done) decide when to stop;
    # `pending` holds the sources of the done chunks after the first gap
    pending: dict[int, list[bytes]] = {}
    prefix_seen: set[bytes] = set()
    prefix_end = 0
    shard_index = 0
    for table, meta in iter_shards(out):
        for chunk in meta.get("chunks", []):
            pending.setdefault(chunk, [])
        for chunk, source in zip(table.column("chunk").to_pylist(), table.column("source").to_pylist()):
            pending.setdefault(chunk, []).append(_digest(source))
        seen.update(_digest(s) for s in table.column("source").to_pylist())
        done.update(meta.get("chunks", []))
        report.add(meta.get("stats", {}))
        shard_index += 1
    report.shards = shard_index
    report.unique = len(seen)

    def advance_prefix() -> None:
        nonlocal prefix_end
        while prefix_end in pending:
            prefix_seen.update(pending.pop(prefix_end))
            prefix_end += 1

    advance_prefix()
    if len(prefix_seen) >= n_unique:
        return report
    max_attempts = max_attempts or max(1000, 200 * n_unique)
    if chunk_timeout is None:
        chunk_timeout = chunk_attempts * (config.timeout or 10.0) * 1.5 + 60

    def next_chunks() -> Iterator[int]:
        chunk = 0
        while True:
            if chunk not in done:
                yield chunk
            chunk += 1

    chunk_ids = next_chunks()
    buffer: list[dict[str, Any]] = []
    buffer_chunks: list[int] = []
    buffer_stats: dict[str, int] = {}
    buffer_cpu = 0.0
    buffer_unmeasured = 0
    start = time.monotonic()
    last_flush = start
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_unique, initial=len(prefix_seen), unit="eq", desc=f"{config.task}", dynamic_ncols=True)

    def flush() -> None:
        nonlocal shard_index, buffer, buffer_chunks, buffer_stats, buffer_cpu, buffer_unmeasured, last_flush
        last_flush = time.monotonic()
        if not buffer_chunks:
            return
        _write_shard(out / "shards", shard_index, buffer, buffer_chunks, buffer_stats, buffer_cpu, buffer_unmeasured)
        shard_index += 1
        report.shards = shard_index
        buffer, buffer_chunks, buffer_stats, buffer_cpu, buffer_unmeasured = [], [], {}, 0.0, 0

    def accept(chunk: int, samples: list[dict[str, Any]], stats: dict[str, int], cpu: float | None) -> None:
        nonlocal buffer_cpu, buffer_unmeasured
        if cpu is None:
            buffer_unmeasured += 1
        else:
            buffer_cpu += cpu
        report.add(stats)
        for cause, count in stats.items():
            buffer_stats[cause] = buffer_stats.get(cause, 0) + count
        buffer_chunks.append(chunk)
        pending[chunk] = []
        for sample in samples:
            buffer.append({**sample, "chunk": chunk})
            report.new_accepted += 1
            key = _digest(sample["source"])
            pending[chunk].append(key)
            if key not in seen:
                seen.add(key)
                report.unique += 1
        advance_prefix()
        if bar is not None:
            bar.n = min(len(prefix_seen), n_unique)
            elapsed = time.monotonic() - start
            bar.set_postfix(
                eq_per_s=f"{report.new_accepted / max(elapsed, 1e-9):.1f}",
                accepted=f"{100 * report.accepted / max(report.attempts, 1):.0f}%",
                refresh=True,
            )
        if len(buffer) >= shard_size or time.monotonic() - last_flush >= flush_seconds:
            flush()

    def exhausted() -> bool:
        return len(prefix_seen) >= n_unique or report.attempts >= max_attempts or (stop is not None and stop())

    try:
        if workers <= 0:
            generator = Generator(config)
            while not exhausted():
                chunk = next(chunk_ids)
                cpu0 = time.process_time()
                samples, stats = generate_chunk(config, _chunk_seed(seed, chunk), chunk_attempts, generator=generator)
                accept(chunk, samples, stats, time.process_time() - cpu0)
        else:
            _run_pool(config, workers, seed, chunk_attempts, chunk_timeout, chunk_ids, accept, exhausted)
        flush()
    finally:
        report.seconds = time.monotonic() - start
        if bar is not None:
            bar.close()
    if len(prefix_seen) < n_unique:
        log.warning(
            "stopped after %d attempts with %d of %d unique equations", report.attempts, len(prefix_seen), n_unique
        )
    return report


def _run_pool(
    config: GeneratorConfig,
    workers: int,
    seed: Any,
    chunk_attempts: int,
    chunk_timeout: float,
    chunk_ids: Iterator[int],
    accept,
    exhausted,
) -> None:
    ctx = mp.get_context("spawn")
    cfg = config.to_dict()
    pool = [_Worker(ctx, cfg) for _ in range(workers)]
    try:
        while not exhausted():
            for w in pool:
                if w.chunk is None:
                    w.start_chunk(next(chunk_ids), chunk_timeout)
                    w.conn.send((w.chunk, _chunk_seed(seed, w.chunk), chunk_attempts))
            timeout = max(0.0, min(w.remaining(chunk_timeout) for w in pool))
            ready = wait([w.conn for w in pool], timeout=min(timeout, 5.0))
            for i, w in enumerate(pool):
                if w.conn in ready:
                    try:
                        chunk, samples, stats, cpu = w.conn.recv()
                    except (EOFError, OSError):
                        chunk, samples, stats = w.chunk, [], {"worker_died": chunk_attempts}
                        cpu = w.chunk_cpu()  # before stop() reaps it
                        w.stop(kill=True)
                        pool[i] = w = _Worker(ctx, cfg)
                    w.chunk = None
                    accept(chunk, samples, stats, cpu)
                elif w.remaining(chunk_timeout) < 0:
                    chunk, cpu = w.chunk, w.chunk_cpu()
                    w.stop(kill=True)
                    pool[i] = _Worker(ctx, cfg)
                    accept(chunk, [], {"chunk_timeout": chunk_attempts}, cpu)
                if exhausted():
                    break
    finally:
        for w in pool:
            w.stop(kill=w.chunk is not None)


# ---------------------------------------------------------------------------- splitting
def split(
    rows: list[dict[str, Any]], n_valid: int, n_test: int, n_train: int | None = None, seed: Any = 0
) -> dict[str, list[dict[str, Any]]]:
    """Unique-source rows cut into test / valid / train after a seeded shuffle.

    Every source occurs once overall, so no valid or test input appears in train.
    """
    rows = unique_rows(rows)
    if n_valid + n_test >= len(rows):
        raise ValueError(
            f"only {len(rows)} distinct equations for {n_valid} valid + {n_test} test + a training set; "
            "generate more (n) or lower n_valid / n_test"
        )
    order = list(range(len(rows)))
    random.Random(f"split/{seed}").shuffle(order)
    shuffled = [rows[i] for i in order]
    test, valid, train = shuffled[:n_test], shuffled[n_test : n_test + n_valid], shuffled[n_test + n_valid :]
    if n_train is not None:
        train = train[:n_train]
    return {"train": train, "valid": valid, "test": test}


__all__ = ["GenerationReport", "generate", "iter_shards", "prefix_rows", "read_rows", "split", "unique_rows"]
