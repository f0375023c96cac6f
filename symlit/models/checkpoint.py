"""The one checkpoint loader: model, tokenizer and task from a ``symlit-train`` checkpoint.

``symlit-eval``, ``symlit-predict``, ``symlit-inspect`` and the LightningModule all rebuild a model
with :func:`rebuild` from the hyper-parameters every checkpoint saves (model config, tokenizer JSON,
task config). A task config says what defines the task (vocabulary, verifier, notation); the paths of
the files its data came from are checked only when data is built, so a checkpoint loads on a machine
without the training files (:func:`symlit.tasks.task_from_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from symlit.data.tokenizer import Seq2SeqTokenizer
from symlit.models.base import DecodingModel, TransformerBase
from symlit.models.builder import build_for_task
from symlit.tasks import task_from_config
from symlit.tasks.base import Task


@dataclass
class LoadedCheckpoint:
    """A checkpoint's model (in eval mode), tokenizer, task and saved hyper-parameters."""

    model: DecodingModel
    tokenizer: Seq2SeqTokenizer
    task: Task
    hparams: dict[str, Any]


def rebuild(
    model: dict[str, Any], tokenizer_json: str, task: dict[str, Any]
) -> tuple[TransformerBase, Seq2SeqTokenizer, Task]:
    """An untrained model, the tokenizer and the task that saved hyper-parameters describe.

    The model class is the one ``model._target_`` names (checkpoints written before the model group
    named a class hold ``symlit.model.TransformerConfig``: the encoder-decoder).
    """
    tokenizer = Seq2SeqTokenizer.from_json(tokenizer_json)
    built_task = task_from_config(task)
    return build_for_task(model, tokenizer, built_task), tokenizer, built_task


def load_checkpoint(path: str | Path, tokenizer_path: str | None = None, device: str = "cpu") -> LoadedCheckpoint:
    """Model, tokenizer and task from a ``symlit-train`` checkpoint, with errors that say what to fix.

    ``tokenizer_path``: a ``tokenizer.json`` that must equal the checkpoint's (a guard when pairing
    files by hand).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt={path}: no such file; pass a checkpoint written by symlit-train, "
            "e.g. ckpt=outputs/<name>/<run>/checkpoints/best.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"ckpt={path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or not all(key in hp for key in ("model", "tokenizer_json", "task")):
        raise ValueError(
            f"ckpt={path} has no symlit hyper-parameters (model, tokenizer_json, task); was it written by symlit-train?"
        )
    model, tokenizer, task = rebuild(hp["model"], hp["tokenizer_json"], hp["task"])
    if tokenizer_path is not None:
        given = Seq2SeqTokenizer.from_file(tokenizer_path)
        if given.fingerprint() != tokenizer.fingerprint():
            theirs, ours = given.hf.get_vocab(), tokenizer.hf.get_vocab()
            differ = sorted(set(theirs.items()) ^ set(ours.items()))[:5]
            raise ValueError(
                f"tokenizer={tokenizer_path} does not match the tokenizer of ckpt={path} "
                f"({len(theirs)} vs {len(ours)} tokens; differing (token, id) pairs include {differ}). "
                "Evaluate with the run's own tokenizer.json, or leave tokenizer unset to use the checkpoint's."
            )
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    rows = state.get("embed.weight")
    if rows is not None and rows.shape[0] != len(tokenizer):
        raise ValueError(
            f"ckpt={path}: the model has {rows.shape[0]} embeddings but its tokenizer "
            f"{len(tokenizer)} tokens; the checkpoint is inconsistent"
        )
    model.load_state_dict(state)
    return LoadedCheckpoint(model.to(device).eval(), tokenizer, task, dict(hp))
