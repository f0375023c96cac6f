"""Lightning callbacks, plugins and loggers specific to symlit."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from symlit.core.atomic import atomic_open
from symlit.review.dashboard import PredictionsCallback


class SignalCheckpoint(L.Callback):
    """Makes every stop signal save a checkpoint at a batch boundary, so a rerun resumes at the same step.

    * ``SIGTERM`` (preemption, ``scancel``, a time limit): Lightning turns it into an exception at
      the next batch boundary on every rank; this callback saves ``last.ckpt`` there.
    * ``SIGUSR1`` on SLURM (``--signal=SIGUSR1@90``): Lightning's own handler saves
      ``hpc_ckpt_<n>.ckpt`` and requeues the job, but inside the signal handler, i.e. possibly in the
      middle of a step (the batch counted as started, not as completed), and the resumed run then
      skips that batch. This callback defers Lightning's handler to the end of the current batch.
    * Under Hydra's submitit launcher the warning signal is ``SIGUSR2``: stop at the next batch
      boundary, save ``last.ckpt``, then let submitit requeue.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._submitit_handler: Any = None
        self._requeue_handler: Any = None  # Lightning's SIGUSR1 handler (save hpc_ckpt, requeue)
        self._requeue_signal: int | None = None
        self._requeue_pending = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # submitit's handler would requeue and exit mid-step. Turn its signal into Lightning's SIGTERM
        # flag instead (stop at the next batch boundary, save below), then hand over to submitit's handler.
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and self._submitit_handler is None:
            self._submitit_handler = signal.getsignal(signal.SIGUSR2)

            def stop_at_batch_end(signum: int, frame: Any) -> None:
                trainer._signal_connector.received_sigterm = True

            signal.signal(signal.SIGUSR2, stop_at_batch_end)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its SLURM handler after on_fit_start; wrap it here
        environment = trainer._accelerator_connector.cluster_environment
        if not isinstance(environment, SLURMEnvironment) or not environment.auto_requeue:
            return
        self._requeue_signal = environment.requeue_signal or signal.SIGUSR1
        handler = signal.getsignal(self._requeue_signal)
        if callable(handler) and handler != self._defer_requeue:
            self._requeue_handler = handler
            signal.signal(self._requeue_signal, self._defer_requeue)

    def _defer_requeue(self, signum: int, frame: Any) -> None:
        self._requeue_pending = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._requeue_handler is None:
            return
        pending = self._requeue_pending
        if trainer.world_size > 1:  # every rank saves at the same step, whichever rank got the signal first
            pending = trainer.strategy.reduce_boolean_decision(pending, all=False)
        if pending:
            # the checkpoint point of ModelCheckpoint: a restored run completes this batch and goes on
            self._requeue_pending = False
            self._requeue_handler(self._requeue_signal, None)
            for logger in trainer.loggers:  # the W&B run shows as preempted, not crashed, when SLURM stops it
                if isinstance(logger, WandbLogger):
                    logger.experiment.mark_preempting()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._requeue_handler is not None and self._requeue_signal is not None:
            signal.signal(self._requeue_signal, self._requeue_handler)  # Lightning's teardown restores the rest
            self._requeue_handler = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.dirpath / "last.ckpt")
            if callable(self._submitit_handler):
                self._submitit_handler(signal.SIGUSR2, None)  # submitit requeues the job and exits


class RankAgreement(L.Callback):
    """After training, checks that every rank holds the same weights (a desynchronised DDP run fails)."""

    def __init__(self) -> None:
        self.checksums: list[float] = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        with torch.no_grad():
            local = sum(p.double().sum() + p.double().square().sum() for p in pl_module.parameters())
        gathered = trainer.strategy.all_gather(torch.as_tensor(local, dtype=torch.float64, device=pl_module.device))
        self.checksums = [float(x) for x in gathered.reshape(-1).cpu()]
        if any(abs(c - self.checksums[0]) > 1e-9 * max(1.0, abs(self.checksums[0])) for c in self.checksums):
            raise RuntimeError(f"ranks finished training with different weights (checksums {self.checksums})")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file next to it and renames it into place.

    A job killed while saving leaves the previous checkpoint intact instead of a truncated file;
    a failed save (a full disk) leaves no temporary file behind. The data is serialised straight
    into the run directory once (Lightning's default writes it to memory, then to the system temp
    directory, then copies it across file systems).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing ``metrics.csv``; this one appends to it."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))

    def _check_log_dir_exists(self) -> None:  # keep the rows of earlier (resumed) sessions
        pass


class CSVLogger(LightningCSVLogger):
    """CSV logger that keeps the rows already written: a resumed run, and the final validation
    and test after ``fit``, append to the same ``metrics.csv`` instead of replacing it."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class ScheduleObserver(L.Callback):
    """Hands each validation's metrics (``trainer.callback_metrics``) to every learning-rate schedule with
    an ``observe`` method (:class:`symlit.training.schedules.HoldUntilImproved`) during ``fit``.

    Added by :meth:`symlit.training.module.Seq2SeqModule.configure_callbacks`. Lightning runs checkpoint callbacks
    after every other callback, so a checkpoint written at the end of a validation already holds what
    the schedule made of it (a module hook would run after them).
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for config in trainer.lr_scheduler_configs:
            if callable(observe := getattr(config.scheduler, "observe", None)):
                observe(trainer.callback_metrics)


class Curriculum(PredictionsCallback):
    """A curriculum by number of operands or by digits: trains on the easy problems first and widens
    the training distribution stage by stage.

    Stage ``k`` trains on the rows of each batch whose difficulty is at most ``levels[k]``
    (``by=n_operands``: the operand count; ``by=digits``: the longest operand's digit count); the
    other rows of the batch are dropped before the step (with none left, the batch's easiest rows
    are kept). The last stage trains on every row. Batches must mix difficulties (``data.bucket=false``;
    length-bucketed batches hold one operand count each). The next stage starts

    * ``steps``: at the given optimizer steps (``len(levels) - 1`` of them, ascending), or
    * ``threshold``: after a validation whose exact match on the validation problems of the current
      stage (the first validation split's decoded batches, summed over ranks) reaches ``threshold``.

    The batches and their order are those of the data module (its exact resume is untouched); the
    stage is a function of the step, or (``threshold``) part of this callback's checkpointed state,
    so a resumed run trains on the same rows. Logs ``train/curriculum_stage`` and
    ``train/curriculum_rows`` (rows kept) every step and, with ``threshold``, ``val/curriculum_acc``.
    """

    BY = ("n_operands", "digits")

    def __init__(
        self,
        levels: list[int],
        by: str = "n_operands",
        steps: list[int] | None = None,
        threshold: float | None = None,
    ) -> None:
        key = "callbacks.curriculum"
        levels, steps = list(levels or []), None if steps is None else list(steps)
        if by not in self.BY:
            raise ValueError(f"{key}.by={by!r} must be one of {list(self.BY)}")
        if len(levels) < 2 or any(b <= a for a, b in zip(levels, levels[1:])) or levels[0] < 1:
            raise ValueError(
                f"{key}.levels={levels} must be at least two increasing positive {by} limits, e.g. [2, 3, 4]"
            )
        if (steps is None) == (threshold is None):
            raise ValueError(
                f"{key}: set exactly one of steps (when each stage starts) and threshold (validation accuracy)"
            )
        if steps is not None and (len(steps) != len(levels) - 1 or any(b <= a for a, b in zip([0, *steps], steps))):
            raise ValueError(
                f"{key}.steps={steps} must be {len(levels) - 1} increasing positive steps, one per stage after the first"
            )
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"{key}.threshold={threshold} must be an exact-match accuracy in (0, 1]")
        self.levels, self.by, self.steps, self.threshold = levels, by, steps, threshold
        self.stage = 0  # the current stage (threshold mode; with steps it follows the step)
        self.advanced_at: list[int] = []  # the steps at which each later stage started (threshold mode)
        self._hits = self._count = 0

    # -- state (checkpointed by Lightning)
    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "advanced_at": list(self.advanced_at)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stage, self.advanced_at = int(state_dict["stage"]), list(state_dict["advanced_at"])

    def stage_at(self, step: int) -> int:
        """The stage of optimizer step ``step``."""
        if self.steps is not None:
            return sum(step >= s for s in self.steps)
        return self.stage

    def difficulty(self, task: Any, source: str) -> int:
        """The operand count or the longest operand's digit count of one source."""
        lengths = task.operand_lengths(source)
        return len(lengths) if self.by == "n_operands" else max(lengths)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not callable(getattr(pl_module.task, "operand_lengths", None)):
            raise ValueError(
                f"callbacks.curriculum needs a task with operands (data=arithmetic), not {type(pl_module.task).__name__}"
            )
        if getattr(trainer.datamodule, "bucket", False):
            raise ValueError(
                "callbacks.curriculum needs data.bucket=false: length-bucketed batches hold problems of one "
                "length (one operand count), so most batches would have no row of the current stage"
            )

    # -- training: keep the rows of the current stage
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        import torch

        stage = self.stage_at(trainer.global_step)
        rows = len(batch["sources"])
        if stage < len(self.levels) - 1:
            difficulty = [self.difficulty(pl_module.task, s) for s in batch["sources"]]
            limit = max(self.levels[stage], min(difficulty))  # no row of the stage: the easiest rows
            keep = [d <= limit for d in difficulty]
            if not all(keep):
                index = torch.tensor([i for i, k in enumerate(keep) if k], device=batch["src"].device)
                pad = pl_module.tokenizer.pad_id
                src = batch["src"].index_select(0, index)  # (B', S): B' rows kept
                tgt_in, tgt_out = batch["tgt_in"].index_select(0, index), batch["tgt_out"].index_select(0, index)
                # drop the padding columns no kept row needs (rows are padded at the end)
                batch["src"] = src[:, : int((src != pad).sum(1).max())]
                width = int((tgt_out != pad).sum(1).max())
                batch["tgt_in"], batch["tgt_out"] = tgt_in[:, :width], tgt_out[:, :width]
                for key in ("sources", "targets"):
                    batch[key] = [x for x, k in zip(batch[key], keep) if k]
        pl_module.log("train/curriculum_stage", float(stage), on_step=True, on_epoch=False, batch_size=rows)
        pl_module.log(
            "train/curriculum_rows", float(len(batch["sources"])), on_step=True, on_epoch=False, batch_size=rows
        )

    # -- validation: the exact match of the current stage's problems (threshold mode)
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._hits = self._count = 0

    def take_predictions(
        self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, dataloader_idx: int
    ) -> None:
        if self.threshold is None or stage != "validate" or dataloader_idx != 0 or not predictions:
            return
        limit = self.levels[self.stage]
        for prediction in predictions:
            if self.difficulty(pl_module.task, prediction.source) <= limit:
                self._count += 1
                self._hits += prediction.greedy_correct

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.threshold is None or trainer.sanity_checking:
            return
        import torch

        totals = trainer.strategy.reduce(
            torch.tensor([self._hits, self._count], dtype=torch.float64, device=pl_module.device), reduce_op="sum"
        )
        hits, count = (float(x) for x in totals.cpu())
        if not count:
            return
        accuracy = hits / count
        pl_module.log("val/curriculum_acc", accuracy, batch_size=1)
        if accuracy >= self.threshold and self.stage < len(self.levels) - 1:
            self.stage += 1
            self.advanced_at.append(trainer.global_step)
