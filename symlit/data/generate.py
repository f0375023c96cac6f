"""``symlit-generate``: generate a calculus dataset with worker processes, resumably.

``symlit-generate data=prim_bwd n=200000 workers=2`` appends Arrow shards under ``output_dir``
as work finishes (rerunning the command resumes), then removes duplicate inputs, splits
train/valid/test leak-free, saves the splits (``dataset/``, plus the reference format under
``reference/``) and prints the rejections by cause. ``audit=true`` verifies every pair.

As a job array (:mod:`symlit.calculus.shards`): ``n_shards=N`` with ``shard=i`` (or
``$SLURM_ARRAY_TASK_ID``) generates slice ``i`` into ``output_dir/shard-000i``; the same command
with ``merge=true`` (and no shard) merges the slices into one dataset as above.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from symlit.calculus import engine, shards
from symlit.calculus.reference_io import write_reference
from symlit.core.atomic import write_text_atomic
from symlit.core.cli import console_command
from symlit.core.config import check_numbers, config_dir, run_cli
from symlit.core.processes import die_with_parent
from symlit.tasks.calculus import CalculusTask

log = logging.getLogger(__name__)


def length_stats(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Token-length statistics (mean, median, p90, p99, max) of sources and targets."""
    out = {}
    for column in ("source", "target"):
        lengths = sorted(len(r[column].split()) for r in rows)
        if not lengths:
            continue
        out[column] = {
            "mean": round(statistics.fmean(lengths), 1),
            "median": lengths[len(lengths) // 2],
            "p90": lengths[int(0.9 * (len(lengths) - 1))],
            "p99": lengths[int(0.99 * (len(lengths) - 1))],
            "max": lengths[-1],
        }
    return out


def _verify_row(args: tuple[CalculusTask, str, str]) -> tuple[bool, str]:
    task, source, target = args
    verdict = task.verify(source, "__no_exact_match__", target)
    return verdict.ok, verdict.method


def audit(
    task: CalculusTask, rows: list[dict[str, Any]], workers: int = 1
) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
    """Verify each pair's target as a hypothesis (no string shortcut); returns (verified, failures,
    verdict counts by method)."""
    jobs = [(task, r["source"], r["target"]) for r in rows]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            results = pool.map(_verify_row, jobs, chunksize=16)
    else:
        results = [_verify_row(j) for j in jobs]
    failures = [r for r, (ok, _) in zip(rows, results) if not ok]
    verdicts: dict[str, int] = {}
    for ok, method in results:
        key = method if ok else f"wrong:{method}"
        verdicts[key] = verdicts.get(key, 0) + 1
    return len(rows) - len(failures), failures, dict(sorted(verdicts.items()))


def save_dataset(out: Path, splits: dict[str, list[dict[str, Any]]]) -> None:
    """Save the splits as a ``DatasetDict`` under ``out/dataset``, replacing any older one only once the
    new one is written: if the save fails, the older one stays in place (a kill between the two
    renames leaves it in ``out/.dataset.old-*``)."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    columns = ("source", "target", "n_ops", "count")
    data = DatasetDict(
        {name: Dataset.from_dict({c: [r[c] for r in rows] for c in columns}) for name, rows in splits.items()}
    )
    tmp = out / f".dataset.tmp-{uuid.uuid4().hex[:8]}"
    final, old = out / "dataset", out / f".dataset.old-{uuid.uuid4().hex[:8]}"
    try:
        data.save_to_disk(str(tmp))
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        if old.exists() and not final.exists():
            os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


NUMBERS = {
    "n": (int, lambda v: v > 0, "the number of distinct equations to generate, e.g. n=10000"),
    "workers": (int, lambda v: v >= 0, "the number of generator processes, >= 0 (0: in this process)"),
    "n_valid": (int, lambda v: v >= 0, "a count >= 0"),
    "n_test": (int, lambda v: v >= 0, "a count >= 0"),
    "shard_size": (int, lambda v: v > 0, "rows per Arrow file, > 0"),
    "chunk_attempts": (int, lambda v: v > 0, "tries per unit of work, > 0"),
    "n_shards": (int, lambda v: v > 0, "the array size, > 0 (null: no array)"),
    "shard": (int, lambda v: v >= 0, "this array task's index, 0..n_shards-1"),
}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Generate (one directory, or one array task's shard), or merge the shards; then deduplicate,
    split, save and (optionally) audit. Returns the summary."""
    check_numbers(cfg, NUMBERS)
    task = instantiate(cfg.data.task)
    if not isinstance(task, CalculusTask):
        raise ValueError(f"symlit-generate needs a calculus data config (data=prim_bwd ...), got {type(task).__name__}")
    if cfg.n <= cfg.n_valid + cfg.n_test:
        raise ValueError(f"n={cfg.n} must exceed n_valid + n_test = {cfg.n_valid + cfg.n_test}")
    out = Path(cfg.output_dir)
    config = task.generator_config()
    n, n_shards = int(cfg.n), cfg.n_shards
    if n_shards is None:
        if cfg.merge:
            raise ValueError("merge=true merges an array's shards: pass n_shards=<the array size they were made with>")
        report = engine.generate(
            config,
            out,
            n,
            workers=int(cfg.workers),
            seed=cfg.seed,
            shard_size=int(cfg.shard_size),
            chunk_attempts=int(cfg.chunk_attempts),
            progress=bool(cfg.progress),
        )
        print(report.summary(), flush=True)
        generated = {
            "attempts": report.attempts,
            "accepted": report.accepted,
            "rejections": {k: v for k, v in sorted(report.causes.items()) if k != "ok"},
            "timeouts": sum(report.causes.get(c, 0) for c in shards.TIMEOUT_CAUSES),
            "seconds_this_run": round(report.seconds, 1),
            "equations_per_s_this_run": round(report.new_accepted / report.seconds, 2) if report.seconds else None,
        }
        return finish(cfg, task, out, engine.prefix_rows(out, n), generated)
    if not cfg.merge:
        index = shards.resolve_shard(cfg.shard, int(n_shards))
        report = shards.generate_shard(
            config,
            out,
            index,
            n,
            int(n_shards),
            seed=cfg.seed,
            workers=int(cfg.workers),
            shard_size=int(cfg.shard_size),
            chunk_attempts=int(cfg.chunk_attempts),
            progress=bool(cfg.progress),
        )
        print(report.summary(), flush=True)
        print(f"shard {index} of {n_shards}: {out / shards.shard_name(index)}; merge with the same command, merge=true")
        return {"shard": index, "n_shards": int(n_shards), "unique": report.unique, "attempts": report.attempts}
    if cfg.shard is not None:
        raise ValueError("merge=true merges every shard: drop shard=...")
    identity = {"config": config.to_dict(), "seed": str(cfg.seed), "chunk_attempts": int(cfg.chunk_attempts)}
    rows, parts = shards.collect(out, n, int(n_shards), identity, allow_partial=bool(cfg.allow_partial))
    causes: dict[str, int] = {}
    for part in parts:
        for cause, count in part.causes.items():
            causes[cause] = causes.get(cause, 0) + count
    distinct = len(engine.unique_rows(rows))
    merged = {
        "n_shards": int(n_shards),
        "shards_complete": sum(p.state == "complete" for p in parts),
        "unfinished_shards": [p.describe() for p in parts if p.state != "complete"],
        "attempts": sum(causes.values()),
        "accepted": causes.get("ok", 0),
        "rejections": {k: v for k, v in sorted(causes.items()) if k != "ok"},
        "timeouts": sum(causes.get(c, 0) for c in shards.TIMEOUT_CAUSES),
        "distinct_per_shard_total": sum(p.distinct for p in parts),
        "duplicates_across_shards": sum(p.distinct for p in parts) - distinct,
        "per_shard": [p.throughput() for p in parts],
    }
    print(
        f"merged {merged['shards_complete']} complete of {n_shards} shards: {len(rows)} rows, {distinct} distinct "
        f"inputs ({merged['duplicates_across_shards']} duplicates across shards removed)"
    )
    return finish(cfg, task, out, rows, merged)


def finish(
    cfg: DictConfig, task: CalculusTask, out: Path, rows: list[dict[str, Any]], generated: dict[str, Any]
) -> dict[str, Any]:
    """Deduplicate and split ``rows`` leak-free, save ``dataset/`` and the reference export, audit
    (``audit=true``) and write ``summary.json``; ``generated`` holds the generation's counts."""
    splits = engine.split(rows, int(cfg.n_valid), int(cfg.n_test), seed=cfg.seed)
    held_out = {r["source"] for name in ("valid", "test") for r in splits[name]}
    leaked = sum(r["source"] in held_out for r in splits["train"])
    if leaked:  # engine.split makes every source occur once; this guards the guarantee the summary states
        raise RuntimeError(f"{leaked} valid/test inputs are in train; the split is broken")
    save_dataset(out, splits)
    if cfg.export_reference:
        for name, split_rows in splits.items():
            write_reference(
                out / "reference" / f"{task.generator}.{name}",
                ((r["count"], r["source"], r["target"]) for r in split_rows),
            )
    summary: dict[str, Any] = {
        "task": task.generator,
        "generator": task.generator_config().to_dict(),
        "seed": cfg.seed,
        "generated_rows": len(rows),
        "splits": {k: len(v) for k, v in splits.items()},
        "heldout_inputs_in_train": leaked,
        **generated,
        "lengths": length_stats([r for v in splits.values() for r in v]),
    }
    print(f"splits: {summary['splits']} (duplicates removed; no valid/test input in train)")
    for column, stats in summary["lengths"].items():
        print(f"{column} length (tokens): {stats}")
    if cfg.audit:
        everything = [r for v in splits.values() for r in v]
        start = time.monotonic()
        ok, failures, verdicts = audit(task, everything, workers=max(1, int(cfg.workers)))
        summary["audit"] = {
            "verified": ok,
            "total": len(everything),
            "verdicts": verdicts,
            "seconds": round(time.monotonic() - start, 1),
            "failures": failures[:20],
        }
        print(
            f"audit: {ok}/{len(everything)} verified ({100 * ok / max(len(everything), 1):.2f} %); verdicts {verdicts}"
        )
        for row in failures[:5]:
            print(f"  FAILED: {row['source']}\t{row['target']}")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=str))
    print(f"dataset: {out / 'dataset'}  (train with data={task.generator} data.task.path={out})")
    return summary


def _check_data_choice(args: list[str]) -> None:
    """``data=<group>`` must be a calculus task (the output directory is named by its generator)."""
    for arg in args:
        if arg.startswith("data="):
            name = arg.partition("=")[2]
            path = config_dir() / "data" / f"{name}.yaml"
            calculus = sorted(
                p.stem
                for p in path.parent.glob("*.yaml")  # calculus.yaml and the groups built on it
                if p.stem != "calculus" and "- calculus" in p.read_text()
            )
            if path.is_file() and name != "calculus" and name not in calculus:
                choices = calculus
                print(
                    f"symlit-generate: error: data={name} is not a calculus task; symlit-generate makes "
                    f"calculus datasets: use data={'|'.join(choices)}",
                    file=sys.stderr,
                )
                raise SystemExit(2)


def _hydra_subdir(shard: Any, n_shards: Any, merge: Any) -> str:
    """Where Hydra saves the command's config (``hydra.output_subdir``): inside the shard's directory
    for an array task, so that tasks never write the same file."""
    if n_shards is None or merge:
        return ".hydra"
    try:
        return f"{shards.shard_name(shards.resolve_shard(shard, int(n_shards)))}/.hydra"
    except (TypeError, ValueError):
        return ".hydra"  # run() reports the bad value


OmegaConf.register_new_resolver("symlit.generate_subdir", _hydra_subdir, replace=True)


def _run_cli(cfg: DictConfig) -> None:
    summary = run_cli("symlit-generate", run, cfg)
    audit_result = summary.get("audit")
    if audit_result and audit_result["verified"] != audit_result["total"]:
        sys.exit(1)


_command = console_command("symlit-generate", "generate", _run_cli)


def main() -> None:
    """Console entry point ``symlit-generate``."""
    _check_data_choice(sys.argv[1:])
    _command()


if __name__ == "__main__":
    main()
