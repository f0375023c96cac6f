"""What a W&B dashboard of a symlit run shows, and how other commands attach to that run.

Training (callbacks and helpers used by :mod:`symlit.training.train`):

* :class:`SplitMetrics`: accuracy per bucket (:meth:`~symlit.tasks.base.Task.bucket`) and the
  task's tallies (:meth:`~symlit.tasks.base.Task.tally`, e.g. arithmetic's accuracy per digit
  position, operand length and carry count) for every validated and tested split, as curves
  (``val/bucket/digits=2``, ``val/d20/acc_by_pos/3``, ``test/acc_by_len/5``); hits and counts are
  summed over batches and DDP ranks before dividing. At the end of the test, the task's pictures
  (:meth:`~symlit.tasks.base.Task.figures`, e.g. arithmetic's length heat map) as PNGs in the
  run directory and W&B images;
* :class:`Throughput`: ``train/samples_per_s`` and ``train/tokens_per_s``;
* :class:`PredictionTable`: the validation predictions with source, target and hypothesis
  rendered by the task (:meth:`symlit.tasks.base.Task.show`) next to the tokens, and the verdict;
* :func:`print_config`, :func:`run_facts`, :func:`wandb_run_identity`, :func:`logged_as`,
  :func:`finish_loggers`: the config tree at start, parameter count / dataset sizes / leakage in
  the config and summary, the run's W&B id, group and name, the final best-checkpoint figures under
  ``best/``, and the exit code of a stopped run.

Other commands: :func:`attach_run` opens the training run's W&B run (resumed from
``wandb_id.txt``) or a linked run in its group, for ``symlit-eval`` and ``symlit-inspect``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from symlit.core.atomic import write_text_atomic
from symlit.evaluation.report import bucket_order
from symlit.evaluation.scoring import SEQ_ACC, TOP1_ACC, acc_at

log = logging.getLogger(__name__)

WANDB_RUN_FILE = "wandb_run.json"
"""In the run directory next to ``wandb_id.txt``: the training run's W&B ``id``, ``group``, ``name``, ``project``."""


class OfflineArtifactsWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger`` that also keeps checkpoints as model artifacts offline
    (``log_model``): Lightning refuses ``log_model`` with ``offline=True``, but an offline run
    stores its artifacts and ``wandb sync`` uploads them with the run."""

    def __init__(self, *args: Any, log_model: bool | str = False, **kwargs: Any) -> None:
        super().__init__(*args, log_model=False, **kwargs)
        self._log_model = log_model


def _wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


# ---------------------------------------------------------------------------- per-split metrics
class PredictionsCallback(L.Callback):
    """A callback that reads the predictions ``validation_step`` and ``test_step`` return.

    Lightning's validation and test batch-end hooks pass them to :meth:`take_predictions` with the
    stage (``validate`` or ``test``) and the index of the split's dataloader; sanity-check batches
    are passed over.
    """

    def take_predictions(
        self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, dataloader_idx: int
    ) -> None:
        """One batch's predictions (empty or ``None`` for a batch that was not decoded); override it."""

    def _batch_end(
        self,
        stage: str,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:  # never true while testing
            self.take_predictions(stage, trainer, pl_module, outputs, dataloader_idx)

    on_validation_batch_end = functools.partialmethod(_batch_end, "validate")
    on_test_batch_end = functools.partialmethod(_batch_end, "test")


class SplitMetrics(PredictionsCallback):
    """Per-bucket accuracy and the task's tallies of every evaluated split; the task's test pictures.

    Uses the predictions that ``validation_step`` / ``test_step`` return. Keys are fixed per split
    (the buckets present in the split's data, then :meth:`Task.tally_keys`), so every rank logs the
    same keys; a key that counted nothing (e.g. outside ``module.val_decode_batches``) is not logged.
    Pictures go to ``dirpath/<stem>.png`` (not under ``fast_dev_run``).
    """

    def __init__(self, dirpath: str | Path, buckets: bool = True) -> None:
        self.dirpath = Path(dirpath)
        self.buckets = buckets
        self._keys: dict[str, tuple[str, ...]] = {}
        self._sums: dict[str, tuple[str, dict[str, list[int]]]] = {}  # split -> (prefix, key -> [hits, count])
        self._rows: dict[str, list[tuple[str, str, str | None, bool]]] = {}

    def split_keys(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> tuple[str, ...]:
        """``bucket/<name>`` for every bucket of the split's rows, then the task's tally keys."""
        if split not in self._keys:
            task, keys = pl_module.task, []
            datamodule = getattr(trainer, "datamodule", None)
            if self.buckets and datamodule is not None and hasattr(datamodule, "dataset"):
                rows = datamodule.dataset[split]
                names = {task.bucket(s, t) for s, t in zip(rows["source"], rows["target"])}
                keys = [f"bucket/{b}" for b in sorted(names, key=bucket_order)]
            self._keys[split] = (*keys, *task.tally_keys(split))
        return self._keys[split]

    def _start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names = pl_module.hparams.test_split_names if stage == "test" else pl_module.hparams.val_split_names
        self._sums, self._rows = {}, {}
        for idx, split in enumerate(names):
            prefix = pl_module.eval_split(stage, idx)[1]
            self._sums[split] = (prefix, {k: [0, 0] for k in self.split_keys(trainer, pl_module, split)})
            self._rows[split] = []

    def take_predictions(
        self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule, preds: Any, dataloader_idx: int
    ) -> None:
        if not preds:  # a batch that was not decoded
            return
        split = pl_module.eval_split(stage, dataloader_idx)[0]
        sums = self._sums[split][1]
        task = pl_module.task
        for p in preds:
            counts = task.tally(p.source, p.target, p.greedy, p.greedy_correct)
            if self.buckets:
                counts[f"bucket/{task.bucket(p.source, p.target)}"] = (int(p.greedy_correct), 1)
            for key, (hits, count) in counts.items():
                if key in sums:  # a bucket absent from the split's rows cannot occur; stay safe anyway
                    sums[key][0] += hits
                    sums[key][1] += count
            if stage == "test":
                self._rows[split].append((p.source, p.target, p.greedy, p.greedy_correct))

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for prefix, sums in self._sums.values():
            if not sums:
                continue
            local = torch.tensor(list(sums.values()), dtype=torch.long, device=pl_module.device)  # (keys, 2)
            total = trainer.strategy.reduce(local, reduce_op="sum") if trainer.world_size > 1 else local
            for key, (hits, count) in zip(sums, total.tolist()):
                if count:
                    pl_module.log(f"{prefix}/{key}", hits / count, add_dataloader_idx=False)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("validate", trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("test", trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module)
        rows = self._rows
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = {split: [r for part in gathered for r in part[split]] for split in rows}
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        import matplotlib.pyplot as plt

        for stem, fig in pl_module.task.figures(rows).items():
            path = self.dirpath / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(fig)
            log.info("wrote %s", path)
            log_images(trainer.loggers, {f"test/{stem}": path})


def log_images(loggers: Sequence[Logger], images: dict[str, Path], step: int | None = None) -> None:
    """PNG files as W&B images under their keys (other loggers are skipped)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            for key, path in images.items():
                logger.log_image(key=key, images=[str(path)], step=step)


# ---------------------------------------------------------------------------- throughput
class Throughput(L.Callback):
    """``train/samples_per_s`` and ``train/tokens_per_s`` (source and target tokens, padding left
    out) over the last ``window`` batches, wall-clock from batch end to batch end (data loading and
    optimizer included, validation excluded). Under DDP each rank measures its own rate and the
    logged value is their sum."""

    def __init__(self, window: int = 20) -> None:
        self.window: deque[tuple[float, int, int]] = deque(maxlen=window)
        self._last: float | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._last is None:
            self._last = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now, pad = time.perf_counter(), pl_module.tokenizer.pad_id
        tokens = int((batch["src"] != pad).sum()) + int((batch["tgt_out"] != pad).sum())
        self.window.append((now - (self._last or now), int(batch["src"].shape[0]), tokens))
        self._last = now
        # every rank logs at every batch (a scalar all-reduce beside the gradients' own)
        per_second = 1.0 / max(sum(w[0] for w in self.window), 1e-9)
        sync = {"sync_dist": trainer.world_size > 1, "reduce_fx": "sum"}
        pl_module.log("train/samples_per_s", sum(w[1] for w in self.window) * per_second, **sync)
        pl_module.log("train/tokens_per_s", sum(w[2] for w in self.window) * per_second, **sync)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None  # the validation pause is not training time
        self.window.clear()


# ---------------------------------------------------------------------------- prediction table
class PredictionTable(PredictionsCallback):
    """A W&B table of validation predictions each epoch (the first ``rows`` of ``valid``, by default
    ``module.num_prediction_samples``): source, target and hypothesis rendered by the task, the
    verdict, and the token sequences."""

    COLUMNS = ("source", "target", "hypothesis", "verdict", "source tokens", "target tokens", "hypothesis tokens")

    def __init__(self, rows: int | None = None) -> None:
        self.rows = rows
        self.samples: list[Any] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples = []

    def take_predictions(
        self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, dataloader_idx: int
    ) -> None:
        limit = self.rows if self.rows is not None else pl_module.hparams.num_prediction_samples
        if stage == "validate" and dataloader_idx == 0 and predictions:
            self.samples.extend(predictions[: max(limit - len(self.samples), 0)])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = _wandb_loggers(trainer)
        if trainer.sanity_checking or not self.samples or not trainer.is_global_zero or not loggers:
            return
        data = [prediction_row(pl_module.task, p) for p in self.samples]
        for logger in loggers:
            logger.log_table(key="val/predictions", columns=list(self.COLUMNS), data=data, step=trainer.global_step)


def _rendered(task: Any, tokens: str | None) -> str:
    try:
        return task.show(tokens)
    except Exception:  # noqa: BLE001 - any task's renderer on a malformed hypothesis: show its tokens
        return "" if tokens is None else tokens


def prediction_row(task: Any, p: Any) -> list[Any]:
    """A row of :attr:`PredictionTable.COLUMNS` for a :class:`~symlit.review.evaluate.Prediction`."""
    return [
        _rendered(task, p.source),
        _rendered(task, p.target),
        _rendered(task, p.greedy),
        p.greedy_verdict or "not verified",
        p.source,
        p.target,
        "<no EOS>" if p.greedy is None else p.greedy,
    ]


# ---------------------------------------------------------------------------- run start and end
def print_config(cfg: DictConfig) -> None:
    """The composed config as a ``rich`` tree (one branch per top-level group)."""
    from rich import print as rich_print
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree(f"[bold]config[/bold] ({cfg.get('name')})")
    for key in cfg:
        node = cfg[key]
        if isinstance(node, DictConfig):
            text = OmegaConf.to_yaml(node, resolve=True)
            tree.add(f"[bold]{key}[/bold]").add(Syntax(text.rstrip(), "yaml", theme="ansi_dark"))
        else:
            tree.add(f"[bold]{key}[/bold]: {node}")
    rich_print(tree)


def run_facts(module: Any, datamodule: Any) -> dict[str, Any]:
    """Parameter count, rows per split and the leakage line: logged in the config and the summary."""
    from symlit.data import leakage

    facts: dict[str, Any] = {
        "model/parameters": int(module.model.num_parameters()),
        **{f"data/rows/{name}": int(split.num_rows) for name, split in datamodule.dataset.items()},
    }
    if datamodule.leakage is not None:
        facts["data/leakage"] = leakage.summary(datamodule.leakage)
    return facts


def launch_id() -> str:
    """The id of this launch, shared by the jobs of one sweep: the SLURM array job's id, else a
    time stamp taken once per process tree (kept in ``SYMLIT_LAUNCH_ID``, so spawned ranks agree)."""
    if array := os.environ.get("SLURM_ARRAY_JOB_ID"):
        return array
    return os.environ.setdefault("SYMLIT_LAUNCH_ID", time.strftime("%Y%m%d-%H%M%S"))


def wandb_run_identity(cfg: DictConfig, run_dir: Path, output_dir: Path, multirun: bool) -> dict[str, str]:
    """The run's W&B ``id``, ``name`` and ``group``, kept in the run directory so a resumed run (the
    same command again, a requeued SLURM job) continues the same W&B run in the same group.

    * name: ``<experiment>/<overrides>`` (``slurm-<job id>`` below them under sbatch; ``run_name``
      when given): the run directory's name with the overrides whole, or ``logger.wandb.name``;
    * group: ``logger.wandb.group``, else ``<experiment>`` for a single run and
      ``<experiment>/<launch id>`` for the jobs of a sweep (:func:`launch_id`).
    """
    wandb_cfg = cfg.logger.wandb
    saved_path = run_dir / WANDB_RUN_FILE
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
    id_file = run_dir / "wandb_id.txt"
    run_id = wandb_cfg.get("id") or (id_file.read_text().strip() if id_file.is_file() else None)
    if run_id is None:
        import uuid

        run_id = uuid.uuid4().hex[:12]
    from hydra.core.hydra_config import HydraConfig

    from symlit.core.config import run_id as directory_name

    if HydraConfig.initialized():  # the run directory's name, with the overrides whole (not cut and hashed)
        below = directory_name(cfg.get("run_name"), HydraConfig.get().job.override_dirname, multirun, limit=None)
    else:  # composed without Hydra's app (tests, notebooks): the directory below outputs/<name>
        try:
            below = run_dir.relative_to(output_dir / str(cfg.name)).as_posix()
        except ValueError:
            below = run_dir.name
    group = wandb_cfg.get("group") or saved.get("group") or (f"{cfg.name}/{launch_id()}" if multirun else str(cfg.name))
    identity = {
        "id": str(run_id),
        "name": str(wandb_cfg.get("name") or f"{cfg.name}/{below}"),
        "group": str(group),
        "project": str(wandb_cfg.get("project")),
    }
    write_text_atomic(id_file, identity["id"])
    if saved != identity:
        write_text_atomic(saved_path, json.dumps(identity, indent=1))
    return identity


@contextlib.contextmanager
def logged_as(loggers: Sequence[Logger], prefix: str) -> Iterator[None]:
    """Metrics logged inside go to the loggers as ``<prefix>/<key>`` (the returned values keep their
    names): the final re-validation of the best checkpoint is ``best/val/seq_acc``, not a last
    point of the ``val/seq_acc`` curve."""
    saved = [(lg, getattr(lg, "_prefix", None), lg.__dict__.get("LOGGER_JOIN_CHAR")) for lg in loggers]
    for lg, old, _ in saved:
        if old is not None:
            lg._prefix, lg.LOGGER_JOIN_CHAR = prefix, "/"
    try:
        yield
    finally:
        for lg, old, join in saved:
            if old is not None:
                lg._prefix = old
                if join is None:
                    lg.__dict__.pop("LOGGER_JOIN_CHAR", None)
                else:
                    lg.LOGGER_JOIN_CHAR = join


def summarize(loggers: Sequence[Logger], values: dict[str, Any]) -> None:
    """Put ``values`` into the W&B run's summary (no history point)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(values)


PREEMPTED = (143, 138)  # 128 + SIGTERM, 128 + SIGUSR1


def finish_loggers(loggers: Sequence[Logger], exit_code: int) -> None:
    """Close the W&B runs with the process's exit code: a run stopped by ``SIGTERM`` (143) or a SLURM
    requeue signal is marked preempting, any non-zero code shows the run as failed/crashed."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            if exit_code in PREEMPTED:
                run.mark_preempting()
            run.summary["exit_code"] = exit_code
            run.finish(exit_code=exit_code)


# ---------------------------------------------------------------------------- other commands
def training_run(run_dir: Path) -> dict[str, str] | None:
    """The training run's W&B identity (``id``, and ``group``/``name``/``project`` when recorded)."""
    path, id_file = run_dir / WANDB_RUN_FILE, run_dir / "wandb_id.txt"
    if path.is_file():
        return json.loads(path.read_text())
    if id_file.is_file():
        return {"id": id_file.read_text().strip()}
    return None


def attach_run(run_dir: Path, logger: DictConfig, job_type: str, label: str, config: dict[str, Any]) -> Any:
    """A W&B run for ``symlit-eval`` / ``symlit-inspect`` results about the run in ``run_dir``.

    ``logger.attach``: ``resume`` (default) continues the training run itself (its id from
    ``wandb_id.txt``), so the results land in its summary; ``linked`` starts a new run in the
    training run's group, named ``<training run name>/<label>``, with ``train_run_id`` in its
    config (``logger.train_run_id`` overrides the id, e.g. for a run trained elsewhere). Without a
    training run a standalone run named ``<label>`` is started. Files go to ``run_dir/wandb``.
    """
    import wandb

    trained = training_run(run_dir) or {}
    train_id = logger.get("train_run_id") or trained.get("id")
    mode = "offline" if logger.get("offline", True) else "online"
    project = trained.get("project") or logger.get("project", "symlit")
    common = dict(project=project, dir=str(run_dir), mode=mode)
    attach = logger.get("attach", "resume")
    if attach not in ("resume", "linked"):
        raise ValueError(f"logger.attach={attach!r} must be 'resume' or 'linked'")
    if train_id and attach == "resume":
        return wandb.init(id=train_id, resume="allow", **common)
    name = f"{trained['name']}/{label}" if trained.get("name") else label
    return wandb.init(
        job_type=job_type,
        name=name,
        group=trained.get("group"),
        config={**config, "train_run_id": train_id},
        **common,
    )


def eval_key(cfg: DictConfig) -> str:
    """``eval/<split>/<decoding>`` of a ``symlit-eval`` config: ``greedy``, ``beam<k>`` or
    ``sample<n>``, with ``-limit<N>`` for a partial split and ``-<checkpoint>`` for one other than ``best``."""
    decode = cfg.decode
    if decode.strategy == "sample":
        decoding = f"sample{decode.num_samples}"
    elif decode.strategy == "beam" and decode.beam_size > 1:
        decoding = f"beam{decode.beam_size}"
    else:
        decoding = "greedy"
    if cfg.get("limit") is not None:
        decoding += f"-limit{cfg.limit}"
    stem = Path(str(cfg.ckpt)).stem
    if stem != "best":
        decoding += f"-{stem}"
    return f"eval/{cfg.split}/{decoding}"


def log_eval(
    cfg: DictConfig,
    task: Any,
    run_dir: Path,
    out_dir: Path,
    summary: dict[str, Any],
    preds: Sequence[Any],
    images: dict[str, Path],
) -> str:
    """``symlit-eval``'s results into the training run (:func:`attach_run`): the figures in its
    summary under :func:`eval_key`, the per-bucket, confidence and prediction tables (source,
    target and hypotheses rendered by the task) and the pictures. Returns the W&B run id."""
    import wandb

    key = eval_key(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    run = attach_run(run_dir, cfg.logger, "eval", f"eval/{out_dir.name}", config)
    try:
        flat: dict[str, Any] = {
            f"{key}/n": summary["n"],
            f"{key}/greedy_acc": summary["greedy"][SEQ_ACC],
            f"{key}/timeouts": summary["timeouts"],
        }
        if nb := summary.get("nbest"):
            k = nb["k"]
            flat |= {f"{key}/{TOP1_ACC}": nb[TOP1_ACC], f"{key}/{acc_at(k)}": nb[acc_at(k)]}
        for bucket, values in summary["by_bucket"].items():
            flat |= {f"{key}/bucket/{bucket}/{name}": v for name, v in values.items()}
        columns = [*PredictionTable.COLUMNS, "top hypotheses", "verdicts", "score", "agreement"]
        rows = [
            [
                *prediction_row(task, p),
                " || ".join(_rendered(task, h) for h in p.hypotheses[:3]),
                ",".join(p.verdicts[:3]),
                p.scores[0] if p.scores else p.greedy_score,
                p.agreement,
            ]
            for p in preds[: cfg.logger.max_rows]
        ]
        buckets = wandb.Table(
            columns=["bucket", "n", "greedy_acc"],
            data=[[b, v["n"], v[SEQ_ACC]] for b, v in summary["by_bucket"].items()],
        )
        confidence = wandb.Table(
            columns=["score_max", "score_min", "n", "accuracy"],
            data=[[r["score_max"], r["score_min"], r["n"], r["accuracy"]] for r in summary["confidence"]["by_score"]],
        )
        run.log(
            {
                f"{key}/predictions": wandb.Table(columns=columns, data=rows),
                f"{key}/buckets": buckets,
                f"{key}/confidence": confidence,
                **{f"{key}/{name}": wandb.Image(str(path)) for name, path in images.items()},
            }
        )
        run.summary.update(flat)
        return run.id
    finally:
        run.finish()
