"""The run directory: where a run's files live, who may write them, and when a run resumes.

``symlit-train`` derives the directory from the command (``paths.run_dir``), never from the
clock, so rerunning the same command finds it again. Rank zero holds its lock
(:class:`~symlit.core.atomic.DirectoryLock`) and writes its files. A run resumes from the newest of
``last.ckpt`` and Lightning's SLURM ``hpc_ckpt_*.ckpt`` (recorded in ``resumes.jsonl``) only if
its settings are those recorded in ``run.json`` (:func:`run_identity`, minus :data:`RESUME_SAFE`)
and its tokenizer is the one saved there; a finished run is only evaluated again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from symlit.core.atomic import write_text_atomic
from symlit.core.moved import current_path
from symlit.data.datamodule import Seq2SeqDataModule
from symlit.data.tokenizer import Seq2SeqTokenizer

log = logging.getLogger(__name__)


class RunDirectoryError(RuntimeError):
    """The run directory holds results that this command would overwrite."""


def is_rank_zero() -> bool:
    """Rank from the launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID), known before the Trainer."""
    return rank_zero_only.rank == 0


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically, from rank zero only."""
    if is_rank_zero():  # every rank computes the same content; one writes it
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def record_resume(run_dir: Path, checkpoint: str) -> None:
    """Append the checkpoint and its global step to ``resumes.jsonl`` (the run's resume history)."""
    if not is_rank_zero():
        return
    import torch

    step = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True).get("global_step")
    with (run_dir / "resumes.jsonl").open("a") as f:
        f.write(json.dumps({"checkpoint": checkpoint, "global_step": step}) + "\n")


def resume_point(run_dir: Path, resume: bool) -> tuple[str | None, bool]:
    """The checkpoint to resume from (the newest of ``last.ckpt`` and Lightning's SLURM
    ``hpc_ckpt_*.ckpt``) and whether the run already finished; refuses to reuse a directory
    holding results when ``resume`` is false."""
    checkpoints = [p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    metrics = run_dir / "metrics.json"
    if (checkpoints or metrics.exists()) and not resume:
        raise RunDirectoryError(
            f"{run_dir} already holds checkpoints or results and resume=false. Rerun with resume=true to "
            "continue, choose another run_name, or delete the directory."
        )
    if is_rank_zero():  # saves interrupted by a kill (last.ckpt in checkpoints/, hpc_ckpt in the run dir)
        for stale in [*(run_dir / "checkpoints").glob(".*.tmp-*"), *run_dir.glob(".*.tmp-*")]:
            stale.unlink(missing_ok=True)
    finished = metrics.exists() and json.loads(metrics.read_text()).get("finished", False)
    newest = max(checkpoints, key=lambda p: p.stat().st_mtime_ns) if checkpoints else None
    if newest is not None:
        log.info("resuming from %s", newest)
    return (str(newest) if newest else None), finished


# Settings a resumed run may change, because they do not change the training trajectory (where runs
# and data live, logging, checkpoint frequency, progress output, the final test's decoding and
# verification, validation-only settings). Every other resolved setting must stay as it was.
RESUME_SAFE = (
    "resume",
    "run_name",
    "name",
    "optimized_metric",
    "paths",
    "logger",
    "callbacks",
    "slurm",
    "hydra",
    "data.num_workers",
    "data.eval_batch_size",
    "data.cache_dir",
    "data.rebuild",
    "data.val_ood_rows",
    "print_config",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.max_time",
    "trainer.limit_val_batches",
    "trainer.limit_test_batches",
    "trainer.num_sanity_val_steps",
    "module.test_decode",
    "module.verify",
    "module.num_prediction_samples",
    "module.val_decode_batches",
    "module.decode_max_len",
)


def _flatten(node: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = node
    return out


def run_identity(cfg: DictConfig, datamodule: Seq2SeqDataModule) -> dict[str, Any]:
    """What must not change when a run is resumed: every resolved setting outside :data:`RESUME_SAFE`
    (the task is represented by its fingerprint), as dotted keys."""
    identity: dict[str, Any] = {"data.task": datamodule.task.fingerprint()}
    for key in cfg:
        if key in RESUME_SAFE:
            continue
        node = cfg[key]
        value = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        _flatten(value, str(key), identity)
    identity = {
        k: v
        for k, v in identity.items()
        if k == "data.task" or not any(k == s or k.startswith(s + ".") for s in (*RESUME_SAFE, "data.task"))
    }
    return json.loads(json.dumps(identity, default=str))


def _current(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` with the classes its ``_target_`` keys name at their current paths."""
    return {k: current_path(v) if k.endswith("_target_") and isinstance(v, str) else v for k, v in identity.items()}


def check_run_identity(run_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse a run directory whose ``run.json`` records other settings than ``identity``."""
    path = run_dir / "run.json"
    if not path.exists():
        return
    # a run started before a class moved records its old path (symlit.core.moved)
    saved, identity = _current(json.loads(path.read_text())), _current(identity)
    changed = sorted(k for k in saved.keys() | identity.keys() if saved.get(k) != identity.get(k))
    if changed:
        shown = ", ".join(f"{k}: {saved.get(k, '<unset>')!r} -> {identity.get(k, '<unset>')!r}" for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise RunDirectoryError(
            f"the config changed since this run started in {run_dir} ({shown}{more}). "
            "Rerun with the original values, use a new run_name, or delete the run directory to start over."
        )


def tokenizer_for_run(datamodule: Seq2SeqDataModule, run_dir: Path) -> Seq2SeqTokenizer:
    """The run's tokenizer: the saved one when resuming (checked against the data), else a new one."""
    path = run_dir / "tokenizer.json"
    built = datamodule.tokenizer
    if path.exists():
        saved = Seq2SeqTokenizer.from_file(path)
        if saved.fingerprint() != built.fingerprint():
            raise RunDirectoryError(
                f"{path} does not match the tokenizer built from the current data: the data config changed "
                "since this run started. Use a new run_name, or delete the run directory to start over."
            )
        datamodule.use_tokenizer(saved)
        return saved
    if is_rank_zero():
        built.save(path)
    return built
