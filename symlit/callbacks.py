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

from symlit.atomic import atomic_open


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
