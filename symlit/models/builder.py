"""Building a model from a ``model`` config: the class its ``_target_`` names, checked settings,
the vocabulary and digit tokens of a tokenizer and task."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import hydra.utils
from torch import nn

from symlit.core.moved import current_path
from symlit.models.base import TransformerBase

if TYPE_CHECKING:
    from symlit.data.tokenizer import Seq2SeqTokenizer
    from symlit.tasks.base import Task


def model_class(cfg: dict[str, Any]) -> type[TransformerBase]:
    """The model class a ``model`` config's ``_target_`` names (paths of older checkpoints mapped by
    :func:`symlit.core.moved.current_path`)."""
    target = current_path(cfg.get("_target_", "symlit.models.seq2seq.Seq2SeqTransformer"))
    try:
        cls = hydra.utils.get_class(target)
    except Exception as err:
        raise ValueError(f"model._target_={target!r} is not an importable class ({err})") from err
    if not isinstance(getattr(cls, "Config", None), type) or not dataclasses.is_dataclass(cls.Config):
        raise ValueError(f"model._target_={target!r} is not a symlit model (it has no Config dataclass)")
    return cls


def build_model(
    cfg: dict[str, Any],
    vocab_size: int,
    pad_id: int,
    digit_ids: tuple[int, ...] = (),
    digits_lsb_first: tuple[bool, bool] = (False, False),
) -> TransformerBase:
    """The model a ``model`` config describes, for a vocabulary of ``vocab_size`` tokens.

    ``digit_ids``: the token ids the task calls digits (Abacus and coupled positions);
    ``digits_lsb_first``: whether the task writes source and result numbers least significant
    digit first (coupled positions). Unknown keys fail with the key named.
    """
    cls = model_class(cfg)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    given = {k: v for k, v in cfg.items() if k != "_target_"}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(
            f"model.{unknown[0]} is not a setting of {cls.__name__}; its settings are "
            f"{sorted(fields - {'vocab_size', 'pad_id', 'digit_ids', 'digits_lsb_first'})}"
        )
    derived = {"vocab_size": vocab_size, "pad_id": pad_id, "digit_ids": tuple(digit_ids)}
    derived["digits_lsb_first"] = tuple(digits_lsb_first)
    return cls(cls.Config(**{**given, **derived}))


def build_for_task(cfg: dict[str, Any], tokenizer: Seq2SeqTokenizer, task: Task) -> TransformerBase:
    """:func:`build_model` for ``tokenizer``'s vocabulary, with the digit tokens ``task`` declares."""
    digit_ids = tokenizer.known_ids(task.digit_tokens())
    return build_model(cfg, len(tokenizer), tokenizer.pad_id, digit_ids, task.digits_lsb_first())


def class_path(model: nn.Module) -> str:
    """``module.Class`` of a model: what checkpoints record as ``model._target_``."""
    return f"{type(model).__module__}.{type(model).__qualname__}"
