"""``symlit-train``: compose the Hydra config, train, validate and test one run.

:func:`train` reads as the steps of a run: check the settings, lock the run directory, build the
data, resume or start (:mod:`symlit.training.run_dir`), build the module, loggers, callbacks and
Trainer, fit, then validate and test the best checkpoint (:func:`_fit_and_evaluate`). The run
directory (``paths.run_dir``) holds everything a run writes: ``tokenizer.json``, ``run.json``,
``checkpoints/{best,last}.ckpt``, logger files and the final ``metrics.json``.
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
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from symlit.core.atomic import DirectoryLock
from symlit.core.config import ConfigError, check_numbers, config_dir, run_cli
from symlit.data.datamodule import Seq2SeqDataModule
from symlit.data.tokenizer import Seq2SeqTokenizer
from symlit.review import dashboard
from symlit.review.plots import plot_lengths
from symlit.training.callbacks import AtomicCheckpointIO, RankAgreement
from symlit.training.module import Seq2SeqModule
from symlit.training.run_dir import (
    check_run_identity,
    is_rank_zero,
    record_resume,
    resume_point,
    run_identity,
    tokenizer_for_run,
    write_json,
)

log = logging.getLogger(__name__)


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
            if is_rank_zero():  # other ranks never start a W&B run
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
    with DirectoryLock(run_dir, "symlit-train run") if is_rank_zero() else contextlib.nullcontext():
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    if cfg.get("print_config") and is_rank_zero():
        dashboard.print_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: Seq2SeqDataModule = instantiate(cfg.data)
    resume_from, finished = None, False
    if not fast_dev_run:  # a smoke test neither resumes nor writes results into the run directory
        resume_from, finished = resume_point(run_dir, cfg.resume)
        identity = run_identity(cfg, datamodule)
        check_run_identity(run_dir, identity)
    datamodule.prepare_data()
    if not fast_dev_run and not (run_dir / "run.json").exists():
        write_json(run_dir / "run.json", identity)  # only now: a data file that fails to build binds nothing
    tokenizer = tokenizer_for_run(datamodule, run_dir)

    module = _module(cfg, datamodule, tokenizer)
    if not fast_dev_run and is_rank_zero() and not (run_dir / "lengths.png").exists():
        # the data as built: source and target length histograms of every split
        plot_lengths(datamodule.dataset, tokenizer, run_dir / "lengths.png", title=f"{cfg.name}: sequence lengths")
    loggers = _loggers(cfg, run_dir) if not fast_dev_run else []
    trainer, agreement = _trainer(cfg, run_dir, loggers)
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


def _module(cfg: DictConfig, datamodule: Seq2SeqDataModule, tokenizer: Seq2SeqTokenizer) -> Seq2SeqModule:
    """The LightningModule for the data, checked to hold its longest sequence."""
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
    return module


def _trainer(cfg: DictConfig, run_dir: Path, loggers: list[Logger]) -> tuple[L.Trainer, RankAgreement]:
    """The Trainer with the configured callbacks (less those with nothing to do), atomic checkpoint
    writes, and the callback that checks the ranks agree."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    agreement = RankAgreement()
    callbacks.append(agreement)
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
    return trainer, agreement


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
            record_resume(run_dir, resume_from)
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
            write_json(
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
