"""``symlit-generate``: generate a calculus dataset with worker processes, resumably.

``symlit-generate data=prim_bwd n=200000 workers=2`` appends Arrow shards under ``output_dir``
as work finishes (rerunning the command resumes), then removes duplicate inputs, splits
train/valid/test leak-free, saves the splits (``dataset/``, plus the reference format under
``reference/``) and prints the rejections by cause. ``audit=true`` verifies every pair.
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

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from symlit.calculus import engine
from symlit.calculus.reference_io import write_reference
from symlit.config import config_dir
from symlit.processes import die_with_parent
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


def _verify_row(args: tuple[CalculusTask, str, str]) -> bool:
    task, source, target = args
    return task.verify(source, "__no_exact_match__", target).ok


def audit(task: CalculusTask, rows: list[dict[str, Any]], workers: int = 1) -> tuple[int, list[dict[str, Any]]]:
    """Verify each pair's target as a hypothesis (no string shortcut); returns (verified, failures)."""
    jobs = [(task, r["source"], r["target"]) for r in rows]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            results = pool.map(_verify_row, jobs, chunksize=16)
    else:
        results = [_verify_row(j) for j in jobs]
    failures = [r for r, ok in zip(rows, results) if not ok]
    return len(rows) - len(failures), failures


def save_dataset(out: Path, splits: dict[str, list[dict[str, Any]]]) -> None:
    """Save the splits as a ``DatasetDict`` under ``out/dataset`` (replaced atomically)."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    columns = ("source", "target", "n_ops", "count")
    data = DatasetDict(
        {name: Dataset.from_dict({c: [r[c] for r in rows] for c in columns}) for name, rows in splits.items()}
    )
    tmp = out / f".dataset.tmp-{uuid.uuid4().hex[:8]}"
    data.save_to_disk(str(tmp))
    final = out / "dataset"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Generate, deduplicate, split, save and (optionally) audit; returns the summary."""
    task = instantiate(cfg.data.task)
    if not isinstance(task, CalculusTask):
        raise ValueError(f"symlit-generate needs a calculus data config (data=prim_bwd ...), got {type(task).__name__}")
    if cfg.n <= cfg.n_valid + cfg.n_test:
        raise ValueError(f"n={cfg.n} must exceed n_valid + n_test = {cfg.n_valid + cfg.n_test}")
    out = Path(cfg.output_dir)
    report = engine.generate(
        task.generator_config(),
        out,
        int(cfg.n),
        workers=int(cfg.workers),
        seed=cfg.seed,
        shard_size=int(cfg.shard_size),
        chunk_attempts=int(cfg.chunk_attempts),
        progress=bool(cfg.progress),
    )
    print(report.summary(), flush=True)
    rows = engine.read_rows(out)
    splits = engine.split(rows, int(cfg.n_valid), int(cfg.n_test), seed=cfg.seed)
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
        "generated_rows": len(rows),
        "splits": {k: len(v) for k, v in splits.items()},
        "attempts": report.attempts,
        "accepted": report.accepted,
        "rejections": {k: v for k, v in sorted(report.causes.items()) if k != "ok"},
        "lengths": length_stats([r for v in splits.values() for r in v]),
        "seconds_this_run": round(report.seconds, 1),
        "equations_per_s_this_run": round(report.new_accepted / report.seconds, 2) if report.seconds else None,
    }
    print(f"splits: {summary['splits']} (duplicates removed; no valid/test input in train)")
    for column, stats in summary["lengths"].items():
        print(f"{column} length (tokens): {stats}")
    if cfg.audit:
        everything = [r for v in splits.values() for r in v]
        start = time.monotonic()
        ok, failures = audit(task, everything, workers=max(1, int(cfg.workers)))
        summary["audit"] = {
            "verified": ok,
            "total": len(everything),
            "seconds": round(time.monotonic() - start, 1),
            "failures": failures[:20],
        }
        print(f"audit: {ok}/{len(everything)} verified ({100 * ok / max(len(everything), 1):.2f} %)")
        for row in failures[:5]:
            print(f"  FAILED: {row['source']}\t{row['target']}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
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


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    summary = run(cfg)
    audit_result = summary.get("audit")
    if audit_result and audit_result["verified"] != audit_result["total"]:
        sys.exit(1)


def main() -> None:
    """Console entry point ``symlit-generate``."""
    _check_data_choice(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
