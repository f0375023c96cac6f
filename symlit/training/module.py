"""The LightningModule: loss, optimizer and schedule wiring, metrics from real decoding.

Everything needed to rebuild the model for evaluation is in the hyper-parameters saved with
every checkpoint: the model config, the tokenizer JSON and the task config.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from symlit.core.moved import current_targets
from symlit.data.datamodule import mask_before_answer
from symlit.evaluation.decoding import DecodeConfig
from symlit.evaluation.scoring import (
    SEQ_ACC,
    Prediction,
    accuracies,
    decode_length_limit,
    decode_predictions,
    nbest_size,
    verify_predictions,
    wants_nbest,
)
from symlit.evaluation.verifier_pool import VerifierPool
from symlit.models.base import TransformerBase
from symlit.models.builder import class_path
from symlit.models.checkpoint import rebuild
from symlit.training.callbacks import ScheduleObserver


def param_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: weight decay on matrices (embeddings included), none on biases
    and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2]},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class Seq2SeqModule(L.LightningModule):
    """Trains a model of the ``model`` group (any :class:`~symlit.models.base.DecodingModel`: the encoder-decoder
    or the decoder-only transformer) and scores it by decoding.

    The model is built from ``model["_target_"]``; the saved hyper-parameters record its class there.

    Validation and test log ``loss``, ``tok_acc`` (teacher-forced next-token accuracy) and
    ``seq_acc``: the fraction of greedy hypotheses the task's verifier accepts. A hypothesis that
    never emits EOS within the length limit counts as wrong. Test splits other than ``test``
    log under ``test/<split>/``. The test also decodes as ``test_decode`` says: with beam search
    (``beam_size > 1``) or sampling it logs ``top1_acc`` and ``acc_at_<k>`` (any of the top k
    verified). Verification runs in a :class:`~symlit.evaluation.verifier_pool.VerifierPool` configured by
    ``verify`` (``workers: 0`` verifies in the trainer process); the task's extra scores
    (:meth:`~symlit.tasks.base.Task.scores`) of the greedy hypotheses are logged too.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        tokenizer_json: str,
        task: dict[str, Any],
        test_split_names: list[str] | None = None,
        val_split_names: list[str] | None = None,
        label_smoothing: float = 0.0,
        decode_max_len: int | None = None,
        val_decode_batches: int | None = None,
        num_prediction_samples: int = 32,
        test_decode: dict[str, Any] | None = None,
        verify: dict[str, Any] | None = None,
        compile: bool = False,
        loss_on: str = "target",
    ) -> None:
        super().__init__()
        # saved hyper-parameters may name where classes lived before (symlit.core.moved)
        model, optim, task = current_targets(_plain(model)), current_targets(_plain(optim)), _plain(task)
        model.setdefault("_target_", "symlit.models.seq2seq.Seq2SeqTransformer")
        test_decode, verify = _plain(test_decode) or {}, _plain(verify) or {}
        DecodeConfig(**test_decode)  # fail on bad values now, not after training
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"module.label_smoothing={label_smoothing} must be in [0, 1)")
        if loss_on not in ("target", "answer"):
            raise ValueError(f"module.loss_on={loss_on!r} must be 'target' (every target token) or 'answer'")
        self.save_hyperparameters(
            {
                "model": model,
                "optim": optim,
                "tokenizer_json": tokenizer_json,
                "task": task,
                "test_split_names": list(test_split_names or ["test"]),
                "val_split_names": list(val_split_names or ["valid"]),
                "label_smoothing": label_smoothing,
                "decode_max_len": decode_max_len,
                "val_decode_batches": val_decode_batches,
                "num_prediction_samples": num_prediction_samples,
                "test_decode": test_decode,
                "verify": verify,
                "compile": compile,
                "loss_on": loss_on,
            },
            logger=False,  # symlit-train logs the composed config once (without the tokenizer JSON)
        )
        self.model: TransformerBase
        self.model, self.tokenizer, self.task = rebuild(model, tokenizer_json, task)
        self.hparams["model"]["_target_"] = class_path(self.model)  # the checkpoint records the class built
        self._pool: VerifierPool | None = None
        # module.loss_on=answer: the loss skips the target up to the task's answer separator (a scratchpad)
        self._answer_separator_id: int | None = None
        if loss_on == "answer":
            separator = getattr(self.task, "answer_separator", None)
            ids = self.tokenizer.known_ids([separator]) if separator else ()
            if not ids:
                raise ValueError(
                    "module.loss_on=answer needs a task whose targets mark where the answer starts "
                    "(e.g. data.task.scratchpad=lee_simplified); use module.loss_on=target"
                )
            self._answer_separator_id = ids[0]

    @property
    def pool(self) -> VerifierPool:
        """The verifier pool (started on first use, closed at teardown)."""
        if self._pool is None:
            self._pool = VerifierPool(self.task, **{"workers": 0, **self.hparams.verify})
        return self._pool

    def teardown(self, stage: str) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ training
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.model(src, tgt_in)

    @property
    def forward_model(self) -> torch.nn.Module:
        """The model for teacher-forced passes: ``torch.compile``-d when ``compile`` is on.

        Kept outside the module tree, so checkpoints hold the plain weights. (Decoding compiles its
        own decoder steps when ``compile`` is on: see :meth:`_evaluate`.)
        """
        if not self.hparams.get("compile"):
            return self.model
        if "_compiled" not in self.__dict__:
            self.__dict__["_compiled"] = torch.compile(self.model)
        return self.__dict__["_compiled"]

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.forward_model(batch["src"], batch["tgt_in"])
        labels = batch["tgt_out"]  # (B, T)
        if self._answer_separator_id is not None:  # module.loss_on=answer
            labels = mask_before_answer(labels, self._answer_separator_id, self.tokenizer.pad_id)
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            labels.flatten(),
            ignore_index=self.tokenizer.pad_id,
            label_smoothing=self.hparams.label_smoothing,
        )
        return loss, logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["src"].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = instantiate(self.hparams.optim["optimizer"])(param_groups(self.model))
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        scheduler = instantiate(self.hparams.optim["scheduler"])(optimizer, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_callbacks(self) -> list[L.Callback]:
        """:class:`~symlit.training.callbacks.ScheduleObserver`: hands each validation's metrics to a schedule that
        reacts to them (e.g. :class:`symlit.training.schedules.HoldUntilImproved`) before any checkpoint is written."""
        return [ScheduleObserver()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # random state too, so a resumed run draws the same dropout masks as an uninterrupted one
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint["symlit_rng"] = {  # plain types and tensors only: loadable with weights_only=True
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if rng := checkpoint.get("symlit_rng"):
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            kind, keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))

    # ------------------------------------------------------------------ evaluation
    def _max_len(self, batch: dict[str, Any]) -> int:
        if self.hparams.decode_max_len:
            return min(self.hparams.decode_max_len, self.model.cfg.max_positions)
        return decode_length_limit(batch["tgt_out"].shape[1], self.model.cfg.max_positions)

    def _evaluate(self, batch: dict[str, Any], prefix: str, decode: bool, nbest: bool = False) -> list[Prediction]:
        size = batch["src"].shape[0]
        loss, logits = self._loss(batch)
        mask = batch["tgt_out"] != self.tokenizer.pad_id
        hits = (logits.argmax(-1) == batch["tgt_out"]) & mask
        log = dict(add_dataloader_idx=False, sync_dist=True)
        self.log(f"{prefix}/loss", loss, batch_size=size, **log)
        self.log(f"{prefix}/tok_acc", hits.sum() / mask.sum(), batch_size=int(mask.sum()), **log)
        if not decode:
            return []
        # module.compile also compiles the decoder steps (static KV cache) unless test_decode says otherwise
        compile = bool(self.hparams.get("compile"))
        config = DecodeConfig(**{"compile": compile, **self.hparams.test_decode, "max_len": self._max_len(batch)})
        preds = decode_predictions(
            self.model, self.tokenizer, batch["src"], batch["sources"], batch["targets"], config, nbest=nbest
        )
        verify_predictions(preds, self.pool, agreement=False)
        for name, value in accuracies(preds, nbest_size(config) if nbest else None).items():
            self.log(f"{prefix}/{name}", value, batch_size=size, prog_bar=prefix == "val" and name == SEQ_ACC, **log)
        # every declared score on every batch (0 where a hypothesis had none: no EOS, an error), so
        # all ranks log the same keys and the means cover every example
        for name in self.task.score_names:
            self.log(f"{prefix}/{name}", sum(p.extra.get(name, 0.0) for p in preds) / size, batch_size=size, **log)
        return preds

    def eval_split(self, stage: str, dataloader_idx: int = 0) -> tuple[str, str]:
        """The split and metric prefix of an evaluation dataloader: ``valid`` -> ``val``, another
        validated split -> ``val/<split>``, ``test`` -> ``test``, another test split -> ``test/<split>``."""
        names, main, prefix = (
            (self.hparams.test_split_names, "test", "test")
            if stage == "test"
            else (self.hparams.get("val_split_names") or ["valid"], "valid", "val")
        )
        split = names[dataloader_idx]
        return split, prefix if split == main else f"{prefix}/{split}"

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[Prediction]:
        limit = self.hparams.val_decode_batches
        _, prefix = self.eval_split("validate", dataloader_idx)
        return self._evaluate(batch, prefix, decode=limit is None or batch_idx < limit)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[Prediction]:
        nbest = wants_nbest(DecodeConfig(**self.hparams.test_decode))
        return self._evaluate(batch, self.eval_split("test", dataloader_idx)[1], decode=True, nbest=nbest)
