"""``symlit-train``: compose the Hydra config, train, validate and test one run.

The run directory (``paths.run_dir``) holds everything a run writes: ``tokenizer.json``,
``checkpoints/{best,last}.ckpt``, logger files and the final ``metrics.json``. Rerunning the same
command finds the same directory and resumes from ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from symlit.core.atomic import DirectoryLock, write_text_atomic
from symlit.core.config import ConfigError, check_numbers, config_dir, run_cli
from symlit.core.moved import current_path
from symlit.data.datamodule import Seq2SeqDataModule
from symlit.data.tokenizer import Seq2SeqTokenizer
from symlit.review import dashboard
from symlit.review.plots import plot_lengths
from symlit.training.callbacks import AtomicCheckpointIO, RankAgreement
from symlit.training.module import Seq2SeqModule

log = logging.getLogger(__name__)


class RunDirectoryError(RuntimeError):
    """The run directory holds results that this command would overwrite."""


def _is_rank_zero() -> bool:
    """Rank from the launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID), known before the Trainer."""
    return rank_zero_only.rank == 0


def _write_json(path: Path, data: Any) -> None:
    if _is_rank_zero():  # every rank computes the same content; one writes it
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def _record_resume(run_dir: Path, checkpoint: str) -> None:
    """Append the checkpoint and its global step to ``resumes.jsonl`` (the run's resume history)."""
    if not _is_rank_zero():
        return
    import torch

    step = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True).get("global_step")
    with (run_dir / "resumes.jsonl").open("a") as f:
        f.write(json.dumps({"checkpoint": checkpoint, "global_step": step}) + "\n")


def _resume_point(run_dir: Path, resume: bool) -> tuple[str | None, bool]:
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
    if _is_rank_zero():  # saves interrupted by a kill (last.ckpt in checkpoints/, hpc_ckpt in the run dir)
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


def _run_identity(cfg: DictConfig, datamodule: Seq2SeqDataModule) -> dict[str, Any]:
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


def _check_run_identity(run_dir: Path, identity: dict[str, Any]) -> None:
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


def _tokenizer_for_run(datamodule: Seq2SeqDataModule, run_dir: Path) -> Seq2SeqTokenizer:
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
    if _is_rank_zero():
        built.save(path)
    return built


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if not isinstance(logger_cfg, DictConfig) or "_target_" not in logger_cfg:
            continue
        kwargs: dict[str, Any] = {}
        if logger_cfg._target_.endswith("WandbLogger"):
            # one W&B run per run directory: id, name and group are kept there so a resumed job continues it
            if _is_rank_zero():  # other ranks never start a W&B run
                output_dir = Path(cfg.paths.output_dir).resolve()
                kwargs |= dashboard.wandb_run_identity(cfg, run_dir, output_dir, _is_multirun())
                kwargs.pop("project")
            kwargs["resume"] = "allow"
            if logger_cfg.get("offline"):  # explicit: WANDB_MODE left behind by an earlier run must not decide
                kwargs["mode"] = "offline"
        loggers.append(instantiate(logger_cfg, **kwargs))
        log.info("logger %s ready", name)
    return loggers


def _print_summary(metrics: dict[str, float], run_dir: Path, best: str | None) -> None:
    width = max((len(k) for k in metrics), default=10)
    lines = ["", "=" * (width + 14), f"{'metric':<{width}}  {'value':>10}", "-" * (width + 14)]
    lines += [f"{k:<{width}}  {v:>10.4f}" for k, v in sorted(metrics.items())]
    lines += ["=" * (width + 14), f"run directory: {run_dir}"]
    if best:
        lines.append(f"best checkpoint: {best}")
    print("\n".join(lines), flush=True)


# numeric settings checked before anything is built: key -> (type, valid, what a valid value is)
NUMBERS: dict[str, tuple[type, Any, str]] = {
    "seed": (int, lambda v: True, "e.g. seed=1"),
    "data.batch_size": (int, lambda v: v >= 1, ">= 1"),
    "data.eval_batch_size": (int, lambda v: v >= 1, ">= 1"),
    "trainer.max_epochs": (int, lambda v: v >= -1, ">= -1 (-1: no limit)"),
    "trainer.max_steps": (int, lambda v: v >= -1, ">= -1 (-1: no limit)"),
    "trainer.accumulate_grad_batches": (int, lambda v: v >= 1, ">= 1"),
    "optim.optimizer.lr": (float, lambda v: v > 0, "> 0"),
    "optim.optimizer.weight_decay": (float, lambda v: v >= 0, ">= 0"),
    "module.verify.workers": (int, lambda v: v >= 0, ">= 0 (0 = verify in the trainer process)"),
    "module.verify.timeout": (float, lambda v: v > 0, "> 0 seconds"),
}


def _check_settings(cfg: DictConfig) -> None:
    """Numbers (:data:`NUMBERS`) and the final test's decoding, named by the keys the user wrote."""
    check_numbers(cfg, NUMBERS)
    from symlit.evaluation.decoding import DecodeConfig

    try:
        DecodeConfig(**OmegaConf.to_container(cfg.module.test_decode, resolve=True))
    except (TypeError, ValueError) as err:  # DecodeConfig names symlit-eval's keys (decode.*)
        raise ConfigError(str(err).replace("decode.", "module.test_decode.")) from None


def train(cfg: DictConfig) -> dict[str, float]:
    """Train, then validate and test the best checkpoint; returns the final metrics.

    Holds a lock on the run directory (``.lock``, naming this process) while it runs: a second
    command for the same directory is refused instead of interleaving with this one.
    """
    _check_settings(cfg)
    run_dir = Path(cfg.paths.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    # the launcher's rank 0 holds the lock for all ranks of the run (they share the directory)
    with DirectoryLock(run_dir, "symlit-train run") if _is_rank_zero() else contextlib.nullcontext():
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    if cfg.get("print_config") and _is_rank_zero():
        dashboard.print_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: Seq2SeqDataModule = instantiate(cfg.data)
    resume_from, finished = None, False
    if not fast_dev_run:  # a smoke test neither resumes nor writes results into the run directory
        resume_from, finished = _resume_point(run_dir, cfg.resume)
        identity = _run_identity(cfg, datamodule)
        _check_run_identity(run_dir, identity)
    datamodule.prepare_data()
    if not fast_dev_run and not (run_dir / "run.json").exists():
        _write_json(run_dir / "run.json", identity)  # only now: a data file that fails to build binds nothing
    tokenizer = _tokenizer_for_run(datamodule, run_dir)

    module: Seq2SeqModule = instantiate(
        cfg.module,
        model=cfg.model,
        optim=cfg.optim,
        tokenizer_json=tokenizer.to_json(),
        task=datamodule.task.config(),
        test_split_names=datamodule.test_split_names,
        val_split_names=datamodule.val_split_names,
        _recursive_=False,
    )
    longest = max(max(datamodule.split(s).max_lengths()) for s in ("train", "valid", *datamodule.test_split_names))
    if longest + 1 > module.model.cfg.max_positions:
        raise ValueError(
            f"sequences of up to {longest + 1} tokens do not fit model.max_positions="
            f"{module.model.cfg.max_positions}; raise model.max_positions"
        )
    log.info("model: %.2fM parameters, vocabulary %d", module.model.num_parameters() / 1e6, len(tokenizer))
    if not fast_dev_run and _is_rank_zero() and not (run_dir / "lengths.png").exists():
        # the data as built: source and target length histograms of every split
        plot_lengths(datamodule.dataset, tokenizer, run_dir / "lengths.png", title=f"{cfg.name}: sequence lengths")

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    agreement = RankAgreement()
    callbacks.append(agreement)
    loggers = _loggers(cfg, run_dir) if not fast_dev_run else []
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if not loggers:  # nothing to report learning rates to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    plugins: list[Any] = [AtomicCheckpointIO()]
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":  # submitit requeues the job itself; Lightning must not
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=plugins,
        default_root_dir=str(run_dir),
    )
    # the composed config once (the module's own hyper-parameters, with the tokenizer JSON, are not
    # logged), with the parameter count, dataset sizes and leakage line, also in the W&B summary
    facts = dashboard.run_facts(module, datamodule)
    for logger in loggers:
        logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "run": facts})
    dashboard.summarize(loggers, facts)
    if (run_dir / "lengths.png").exists():
        dashboard.log_images(loggers, {"data/lengths": run_dir / "lengths.png"}, step=0)

    exit_code = 1
    try:
        metrics = _fit_and_evaluate(cfg, trainer, module, datamodule, run_dir, resume_from, finished, agreement)
        exit_code = 0
        return metrics
    except SIGTERMException:
        exit_code = 143
        log.warning("stopped by SIGTERM at step %d; rerun the same command to resume", trainer.global_step)
        raise SystemExit(143) from None
    except SystemExit as err:
        # Lightning ends a run interrupted by SIGINT (KeyboardInterrupt) with exit status 1: report 130
        exit_code = 130 if trainer.interrupted and err.code == 1 else err.code if isinstance(err.code, int) else 1
        raise SystemExit(exit_code) from None
    finally:
        dashboard.finish_loggers(loggers, exit_code)  # never let a W&B run leak into the next multirun job


def _fit_and_evaluate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: Seq2SeqModule,
    datamodule: Seq2SeqDataModule,
    run_dir: Path,
    resume_from: str | None,
    finished: bool,
    agreement: RankAgreement,
) -> dict[str, float]:
    """Fit (unless finished), save ``last.ckpt``, validate and test the best checkpoint, write ``metrics.json``."""
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    if finished:
        log.info("%s already finished training; evaluating only", run_dir)
        global_step = json.loads((run_dir / "metrics.json").read_text())["global_step"]
    else:
        if resume_from:
            _record_resume(run_dir, resume_from)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        global_step = trainer.global_step
        if not fast_dev_run:
            trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    monitored = [cb.best_model_path for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]
    best = Path(monitored[0]) if monitored and monitored[0] else run_dir / "checkpoints" / "best.ckpt"
    last = run_dir / "checkpoints" / "last.ckpt"
    # explicit paths: with None, Lightning under SLURM would load a stale hpc_ckpt instead of these weights
    ckpt = None if fast_dev_run else str(best) if best.is_file() else str(last) if last.is_file() else None
    metrics: dict[str, float] = {}
    with dashboard.logged_as(trainer.loggers, "best"):  # not the last point of the val/* curves
        for result in trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False):
            metrics.update(result)
    for result in trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False):
        metrics.update(result)
    metrics = {k: float(v) for k, v in metrics.items()}
    if trainer.is_global_zero:
        if not fast_dev_run:
            _write_json(
                run_dir / "metrics.json",
                {
                    "metrics": metrics,
                    "checkpoint": ckpt,
                    "finished": True,
                    "global_step": global_step,
                    "world_size": trainer.world_size,
                    "cluster": type(trainer._accelerator_connector.cluster_environment).__name__,
                    "rank_checksums": agreement.checksums,
                },
            )
        _print_summary(metrics, run_dir, ckpt)
    return metrics


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point; returns ``optimized_metric`` for Hydra sweepers."""
    os.environ.setdefault("WANDB_SILENT", "true")
    metrics = run_cli("symlit-train", train, cfg)
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None


if __name__ == "__main__":
    main()
