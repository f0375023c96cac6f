"""Config helpers: where the Hydra configs live and the resolvers they use."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def digest(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as canonical JSON: symlit's one
    fingerprint helper (dataset caches, generation work directories, evaluation directory names)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def user_error(err: BaseException) -> BaseException | None:
    """The user error behind ``err`` (a bad config value, a bad data file, a busy or changed run
    directory; also when Hydra wraps it in an instantiation error), else ``None``."""
    from symlit.core.atomic import DirectoryLocked

    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        # `raise X from None` hides the error X replaced (e.g. a run-directory lock's BlockingIOError)
        hidden = err.__suppress_context__ and err.__cause__ is None
        err = err.__cause__ or (None if hidden else err.__context__)  # type: ignore[assignment]
    for candidate in reversed(seen):  # the innermost error says what went wrong
        if isinstance(candidate, (ValueError, KeyError, OSError, DirectoryLocked)) or type(candidate).__name__ in (
            "RunDirectoryError",
        ):
            return candidate
    return None


def run_cli(program: str, function: Callable[[DictConfig], T], cfg: DictConfig) -> T:
    """``function(cfg)``; a user error ends the program with its message on one line and exit status 2,
    with no traceback (``HYDRA_FULL_ERROR=1`` shows it)."""
    try:
        return function(cfg)
    except Exception as err:
        cause = user_error(err)
        if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = cause.args[0] if isinstance(cause, KeyError) and cause.args else str(cause)
        print(f"{program}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def check_numbers(cfg: DictConfig, rules: dict[str, tuple[type, Callable[[Any], bool], str]]) -> None:
    """Check ``key: (type, valid, what)`` rules on ``cfg`` (missing or null keys are skipped) before
    anything is built, so ``data.batch_size=abc`` fails with the key named, not deep inside a library."""
    for key, (kind, valid, what) in rules.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        kinds = (int, float) if kind is float else (int,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"{key}={value!r} must be {'a number' if kind is float else 'an integer'} ({what})")
        if not valid(value):
            raise ConfigError(f"{key}={value} must be {what}")


def quote_paths(argv: Sequence[str]) -> list[str]:
    """Quote the values of ``key=value`` arguments that are paths (they hold a ``/``) with characters
    Hydra's override parser rejects or splits on (``=``, ``,``, brackets, spaces, ...), so that every
    path ``symlit-train`` prints (``.../optim.optimizer.lr=0.002,trainer.max_epochs=60/...``) is
    accepted unquoted."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        special = set("=,()[]{} '\"")
        if sep and "/" in value and special & set(value) and value[0] not in "'\"":
            escaped = value.replace("'", "\\'")
            arg = f"{key}='{escaped}'"
        out.append(arg)
    return out


def config_dir() -> Path:
    """``conf/`` of a source checkout, else the copy packaged inside ``symlit/conf``."""
    package = Path(__file__).resolve().parents[1]  # symlit/
    for candidate in (package.parent / "conf", package / "conf"):
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


def run_id(run_name: str | None, overrides: str, sweep: bool = False, limit: int | None = 100) -> str:
    """Directory name of a run, derived from the command, never from the clock.

    An explicit ``run_name`` wins (in a sweep it is joined with the job's overrides so jobs stay
    apart). Otherwise, in a SLURM batch job, the job id names it (:func:`slurm_job_tag`), below the
    overrides, so a requeued job resumes and a new submission starts afresh. Elsewhere the
    command-line overrides name the run (``default`` when there are none), so rerunning the same
    command finds the same directory and resumes from its ``last.ckpt``. Sweep jobs are named by
    their overrides. Overrides longer than ``limit`` characters are cut and hashed (``None``: kept
    whole, as the W&B run name does).
    """
    safe = re.sub(r"[^A-Za-z0-9_.,=+\-]", "_", overrides or "")
    if limit is not None and len(safe) > limit:
        safe = f"{safe[:80]}-{hashlib.sha256(safe.encode()).hexdigest()[:10]}"
    if run_name and (not sweep or not safe):
        return str(run_name)
    if run_name:
        return f"{run_name}/{safe}"
    tag = None if sweep else slurm_job_tag()
    if tag:
        return f"{safe}/{tag}" if safe else tag
    return safe or "default"


def default_eval_dir(
    ckpt: str,
    split: str,
    decode: Any,
    limit: int | None = None,
    verify_timeout: float | None = None,
    data: Any = None,
    split_file: str | None = None,
) -> str:
    """``<run dir>/eval/<checkpoint>-<split>-<decoding>[-limit<N>][-<hash>]``, next to the checkpoint's run.

    The name carries every setting that changes the result, so two evaluations never share a
    directory: ``limit`` in words, and a hash of the other decoding settings that differ from
    ``conf/eval.yaml``, of ``verify.timeout`` when changed, of a ``data=`` replacement and of a
    ``split_file`` (whose name stands for the split).
    """
    path = Path(ckpt)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    decode = OmegaConf.to_container(decode, resolve=True) if isinstance(decode, DictConfig) else dict(decode)
    strategy, beam_size = decode.get("strategy", "beam"), decode.get("beam_size", 1)
    decoding = f"beam{beam_size}" if strategy == "beam" and beam_size > 1 else strategy
    if split_file is not None:
        split = Path(split_file).stem
    name = f"{path.stem}-{split}-{'greedy' if decoding == 'beam' else decoding}"
    if limit is not None:
        name += f"-limit{limit}"
    defaults = OmegaConf.load(config_dir() / "eval.yaml")
    changed: dict[str, Any] = {
        k: v for k, v in decode.items() if k not in ("strategy", "beam_size", "compile") and v != defaults.decode.get(k)
    }
    if verify_timeout is not None and verify_timeout != defaults.verify.timeout:
        changed["verify.timeout"] = verify_timeout
    if data is not None:
        changed["data"] = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else data
    if split_file is not None:
        changed["split_file"] = str(Path(split_file).resolve())
    if changed:
        name += "-" + digest(changed, 8)
    return str(run_dir / "eval" / name)


OmegaConf.register_new_resolver("symlit.run_id", run_id, replace=True)
OmegaConf.register_new_resolver("symlit.eval_dir", default_eval_dir, replace=True)
