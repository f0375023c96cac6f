"""Config helpers: where the Hydra configs live and the resolvers they use."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from omegaconf import OmegaConf


def config_dir() -> Path:
    """``conf/`` of a source checkout, else the copy packaged inside ``symlit/conf``."""
    for candidate in (Path(__file__).resolve().parents[1] / "conf", Path(__file__).resolve().parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError("symlit's Hydra configs (conf/train.yaml) were not found next to the package")


def slurm_job_tag() -> str | None:
    """``slurm-<job id>`` (``slurm-<array job id>_<task id>`` in an array) inside a SLURM batch job.

    A requeued job keeps its id, so it finds its run directory again. Interactive allocations
    (job name ``bash`` or ``interactive``, as Lightning treats them) get no tag.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if not job or os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"slurm-{array_job}_{task}" if array_job and task else f"slurm-{job}"


def run_id(run_name: str | None, overrides: str, sweep: bool = False) -> str:
    """Directory name of a run, derived from the command, never from the clock.

    An explicit ``run_name`` wins (in a sweep it is joined with the job's overrides so jobs stay
    apart). Otherwise, in a SLURM batch job, the job id names it (:func:`slurm_job_tag`), below the
    overrides, so a requeued job resumes and a new submission starts afresh. Elsewhere the
    command-line overrides name the run (``default`` when there are none), so rerunning the same
    command finds the same directory and resumes from its ``last.ckpt``. Sweep jobs are named by
    their overrides.
    """
    safe = re.sub(r"[^A-Za-z0-9_.,=+\-]", "_", overrides or "")
    if len(safe) > 100:
        safe = f"{safe[:80]}-{hashlib.sha256(safe.encode()).hexdigest()[:10]}"
    if run_name and (not sweep or not safe):
        return str(run_name)
    if run_name:
        return f"{run_name}/{safe}"
    tag = None if sweep else slurm_job_tag()
    if tag:
        return f"{safe}/{tag}" if safe else tag
    return safe or "default"


def default_eval_dir(ckpt: str, split: str, strategy: str, beam_size: int) -> str:
    """``<run dir>/eval/<checkpoint>-<split>-<decoding>``, next to the checkpoint's run."""
    path = Path(ckpt)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    decoding = f"beam{beam_size}" if strategy == "beam" and beam_size > 1 else strategy
    decoding = "greedy" if decoding == "beam" else decoding
    return str(run_dir / "eval" / f"{path.stem}-{split}-{decoding}")


OmegaConf.register_new_resolver("symlit.run_id", run_id, replace=True)
OmegaConf.register_new_resolver("symlit.eval_dir", default_eval_dir, replace=True)
