"""``symlit-eval ckpt=PATH``: decode one split with a checkpoint, verify every hypothesis, and write
``eval.json``, ``report.md`` and ``predictions.jsonl``.

The pieces live in their own modules: the checkpoint loader in :mod:`symlit.models.checkpoint`, decoding,
verification and metric names in :mod:`symlit.evaluation.scoring` (shared with the LightningModule), the
summary and Markdown report in :mod:`symlit.evaluation.report`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from symlit.core.atomic import write_text_atomic
from symlit.core.cli import console_command
from symlit.core.config import ConfigError, quote_paths, run_cli
from symlit.evaluation.decoding import DecodeConfig
from symlit.evaluation.report import render_report, summarize
from symlit.evaluation.scoring import (
    SEQ_ACC,
    TOP1_ACC,
    Prediction,
    acc_at,
    decode_length_limit,
    decode_predictions,
    verify_predictions,
)
from symlit.evaluation.verifier_pool import VerifierPool
from symlit.models.checkpoint import LoadedCheckpoint, load_checkpoint
from symlit.tasks import task_from_config

log = logging.getLogger(__name__)


def evaluate_split(
    loaded: LoadedCheckpoint,
    sources: list[str],
    targets: list[str],
    config: DecodeConfig,
    pool: VerifierPool,
    batch_size: int = 256,
    device: str = "cpu",
) -> list[Prediction]:
    """Decode and verify every input; batches are formed by source length (less padding)."""
    tok, task = loaded.tokenizer, loaded.task
    ids = tok.encode_batch(sources)
    order = sorted(range(len(sources)), key=lambda i: len(ids[i]))
    preds: list[Prediction | None] = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        src = torch.full((len(chunk), width), tok.pad_id, dtype=torch.long)  # (B, S)
        for row, i in enumerate(chunk):
            src[row, : len(ids[i])] = torch.tensor(ids[i])
        chunk_sources, chunk_targets = [sources[i] for i in chunk], [targets[i] for i in chunk]
        buckets = [task.bucket(s, t) for s, t in zip(chunk_sources, chunk_targets)]
        batch = decode_predictions(loaded.model, tok, src.to(device), chunk_sources, chunk_targets, config, buckets)
        for i, p in zip(chunk, batch):
            preds[i] = p
        log.info("decoded %d / %d", min(start + batch_size, len(order)), len(order))
    done = [p for p in preds if p is not None]
    verify_predictions(done, pool)
    return done


def run_eval(cfg: DictConfig) -> dict[str, Any]:
    """``symlit-eval``: evaluate ``cfg.ckpt`` on ``cfg.split``; writes ``eval.json`` and ``report.md``."""
    if cfg.limit is not None and (isinstance(cfg.limit, bool) or not isinstance(cfg.limit, int) or cfg.limit < 1):
        raise ConfigError(f"limit={cfg.limit!r} must be a positive number of inputs, or null for the whole split")
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_checkpoint(cfg.ckpt, cfg.get("tokenizer"), device)
    if cfg.get("data") is not None:  # evaluate on other data: data=<group> replaces the checkpoint's task
        loaded.task = task_from_config(OmegaConf.to_container(cfg.data.task, resolve=True))
    split_name = cfg.split
    if cfg.get("split_file") is not None:  # pairs from a file: no training data needed
        from symlit.tasks.files import read_pairs

        split_name = str(cfg.split_file)
        rows = read_pairs(split_name, "split_file", prefix=None)
        sources, targets = rows["source"][: cfg.limit], rows["target"][: cfg.limit]
    else:
        from symlit.data.datamodule import load_or_build  # heavy (datasets); imported when needed

        dataset = load_or_build(loaded.task, cfg.paths.data_dir)
        if cfg.split not in dataset:
            raise KeyError(
                f"split={cfg.split!r} is not a split of task {loaded.task.name}; available: {sorted(dataset)}"
            )
        split = dataset[cfg.split]
        if cfg.limit is not None:
            split = split.select(range(min(cfg.limit, split.num_rows)))
        sources, targets = list(split["source"]), list(split["target"])
    unknown = sum(loaded.tokenizer.unk_id in ids for ids in loaded.tokenizer.encode_batch(sources))
    if unknown:
        log.warning("%d of %d sources contain tokens unknown to the checkpoint's tokenizer", unknown, len(sources))
    config = DecodeConfig(**OmegaConf.to_container(cfg.decode, resolve=True))
    if config.max_len is None:
        longest = max((len(t) for t in loaded.tokenizer.encode_batch(targets)), default=1)
        config.max_len = decode_length_limit(longest, loaded.model.cfg.max_positions)

    with VerifierPool(loaded.task, cfg.verify.workers, cfg.verify.timeout) as pool:
        preds = evaluate_split(loaded, sources, targets, config, pool, cfg.batch_size, device)
    summary = summarize(preds, config)
    summary["unknown_token_sources"] = unknown
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "checkpoint": str(cfg.ckpt),
        "split": split_name,
        "task": loaded.task.name,
        "decode": asdict(config),
        "verify": OmegaConf.to_container(cfg.verify),
    }
    write_text_atomic(out_dir / "eval.json", json.dumps({**meta, "metrics": summary}, indent=1, default=str))
    write_text_atomic(out_dir / "report.md", render_report(summary, preds, meta))
    with (out_dir / "predictions.jsonl.tmp").open("w") as f:
        for p in preds:
            f.write(json.dumps(asdict(p)) + "\n")
    os.replace(out_dir / "predictions.jsonl.tmp", out_dir / "predictions.jsonl")
    from symlit.review import dashboard
    from symlit.review.plots import eval_figures

    images = eval_figures(out_dir)  # accuracy_by_bucket.png, reliability.png
    run_dir = Path(cfg.ckpt).parent.parent if Path(cfg.ckpt).parent.name == "checkpoints" else Path(cfg.ckpt).parent
    enabled = cfg.logger.get("enabled")
    if enabled == "auto":  # log when the checkpoint's training run has a W&B run
        enabled = dashboard.training_run(run_dir) is not None
    if enabled:
        run_id = dashboard.log_eval(cfg, loaded.task, run_dir, out_dir, summary, preds, images)
        print(f"W&B run {run_id}: {dashboard.eval_key(cfg)}/...")
    line = f"greedy {summary['greedy'][SEQ_ACC]:.4f}"
    if nb := summary.get("nbest"):
        k = nb["k"]
        line += f" | {nb['strategy']} top-1 {nb[TOP1_ACC]:.4f} | @{k} {nb[acc_at(k)]:.4f}"
    print(
        f"{split_name}: {summary['n']} inputs | {line} | timeouts {summary['timeouts']}\nreport: {out_dir / 'report.md'}"
    )
    return summary


def _run_cli(cfg: DictConfig) -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    run_cli("symlit-eval", run_eval, cfg)


_command = console_command("symlit-eval", "eval", _run_cli)


def main() -> None:
    """Console entry point ``symlit-eval``: accepts the checkpoint paths ``symlit-train`` prints, unquoted."""
    sys.argv[1:] = quote_paths(sys.argv[1:])
    _command()


if __name__ == "__main__":
    main()
