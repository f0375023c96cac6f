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

from symlit.decoding import greedy_decode
from symlit.model import Seq2SeqTransformer, TransformerConfig
from symlit.tasks.base import Task
from symlit.tokenizer import Seq2SeqTokenizer


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class Seq2SeqModule(L.LightningModule):
    """Trains a :class:`~symlit.model.Seq2SeqTransformer` and scores it by greedy decoding.

    Validation and test log ``loss``, ``tok_acc`` (teacher-forced next-token accuracy) and
    ``seq_acc``: the fraction of greedy hypotheses the task's verifier accepts. A hypothesis that
    never emits EOS within the length limit counts as wrong. Test splits other than ``test``
    log under ``test/<split>/``.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        tokenizer_json: str,
        task: dict[str, Any],
        test_split_names: list[str] | None = None,
        label_smoothing: float = 0.0,
        decode_max_len: int | None = None,
        val_decode_batches: int | None = None,
        num_prediction_samples: int = 32,
    ) -> None:
        super().__init__()
        model, optim, task = _plain(model), _plain(optim), _plain(task)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"module.label_smoothing={label_smoothing} must be in [0, 1)")
        self.save_hyperparameters(
            {
                "model": model,
                "optim": optim,
                "tokenizer_json": tokenizer_json,
                "task": task,
                "test_split_names": list(test_split_names or ["test"]),
                "label_smoothing": label_smoothing,
                "decode_max_len": decode_max_len,
                "val_decode_batches": val_decode_batches,
                "num_prediction_samples": num_prediction_samples,
            }
        )
        self.tokenizer = Seq2SeqTokenizer.from_json(tokenizer_json)
        config: TransformerConfig = instantiate(model, vocab_size=len(self.tokenizer), pad_id=self.tokenizer.pad_id)
        self.model = Seq2SeqTransformer(config)
        self.task: Task = instantiate(task)
        self.val_samples: list[tuple[str, str, str, bool]] = []

    # ------------------------------------------------------------------ training
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.model(src, tgt_in)

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(batch["src"], batch["tgt_in"])
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            batch["tgt_out"].flatten(),
            ignore_index=self.tokenizer.pad_id,
            label_smoothing=self.hparams.label_smoothing,
        )
        return loss, logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["src"].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = instantiate(self.hparams.optim["optimizer"])(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        )
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        scheduler = instantiate(self.hparams.optim["scheduler"])(optimizer, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

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
    def decode_batch(self, src: torch.Tensor, max_len: int) -> list[str | None]:
        """Greedy hypotheses as text; ``None`` for a row that never emitted EOS."""
        tok = self.tokenizer
        out = greedy_decode(self.model, src, tok.bos_id, tok.eos_id, max_len)
        texts = tok.decode_batch(out.tokens.tolist())
        return [t if done else None for t, done in zip(texts, out.finished.tolist())]

    def _max_len(self, batch: dict[str, Any]) -> int:
        if self.hparams.decode_max_len:
            return min(self.hparams.decode_max_len, self.model.cfg.max_positions)
        return min(2 * batch["tgt_out"].shape[1] + 8, self.model.cfg.max_positions)

    def _evaluate(self, batch: dict[str, Any], prefix: str, decode: bool) -> list[tuple[str, str, str, bool]]:
        size = batch["src"].shape[0]
        loss, logits = self._loss(batch)
        mask = batch["tgt_out"] != self.tokenizer.pad_id
        hits = (logits.argmax(-1) == batch["tgt_out"]) & mask
        log = dict(add_dataloader_idx=False, sync_dist=True)
        self.log(f"{prefix}/loss", loss, batch_size=size, **log)
        self.log(f"{prefix}/tok_acc", hits.sum() / mask.sum(), batch_size=int(mask.sum()), **log)
        if not decode:
            return []
        hypotheses = self.decode_batch(batch["src"], self._max_len(batch))
        rows = []
        for source, target, hyp in zip(batch["sources"], batch["targets"], hypotheses):
            ok = hyp is not None and self.task.verify(source, target, hyp)
            rows.append((source, target, "<no EOS>" if hyp is None else hyp, ok))
        accuracy = sum(r[3] for r in rows) / size
        self.log(f"{prefix}/seq_acc", accuracy, batch_size=size, prog_bar=prefix == "val", **log)
        return rows

    def on_validation_epoch_start(self) -> None:
        self.val_samples = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        limit = self.hparams.val_decode_batches
        rows = self._evaluate(batch, "val", decode=limit is None or batch_idx < limit)
        room = self.hparams.num_prediction_samples - len(self.val_samples)
        self.val_samples.extend(rows[: max(room, 0)])

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.hparams.test_split_names[dataloader_idx]
        self._evaluate(batch, "test" if split == "test" else f"test/{split}", decode=True)
