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
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException


class PredictionTable(L.Callback):
    """Logs a W&B table of validation samples (input, target, prediction, correct) each epoch."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = getattr(pl_module, "val_samples", [])
        if trainer.sanity_checking or not rows or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(
                    key="val/predictions",
                    columns=["input", "target", "prediction", "correct"],
                    data=[list(r) for r in rows],
                    step=trainer.global_step,
                )


class SignalCheckpoint(L.Callback):
    """Saves ``last.ckpt`` when the job is stopped with SIGTERM (preemption, ``scancel``, a time limit).

    Lightning turns SIGTERM into an exception at the next batch boundary on every rank; this
    callback saves the checkpoint there, so rerunning the command resumes at the same global step.
    (``SIGUSR1`` on SLURM is Lightning's own: it saves ``hpc_ckpt_<n>.ckpt`` and requeues the job.
    Under Hydra's submitit launcher, submitit's ``SIGUSR2`` is routed the same way: stop at the
    next batch boundary, save, then let submitit requeue.)
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._submitit_handler: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Under Hydra's submitit launcher the warning signal is SIGUSR2, and submitit's handler would
        # requeue and exit mid-step. Turn it into Lightning's SIGTERM flag instead (stop at the next
        # batch boundary, save below), then hand over to submitit's handler to requeue.
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and self._submitit_handler is None:
            self._submitit_handler = signal.getsignal(signal.SIGUSR2)

            def stop_at_batch_end(signum: int, frame: Any) -> None:
                trainer._signal_connector.received_sigterm = True

            signal.signal(signal.SIGUSR2, stop_at_batch_end)

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
    """Writes each checkpoint to a temporary file and renames it into place.

    A job killed while saving leaves the previous ``last.ckpt`` intact instead of a truncated file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


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
