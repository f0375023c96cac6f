"""What both architectures share: the config fields, the decoding interface and the base module.

:class:`DecodingModel` is the only thing decoding, evaluation and the LightningModule use:
``model(src, tgt_in)`` gives teacher-forced logits, :meth:`~DecodingModel.prefill` reads the sources
into a :class:`~symlit.models.cache.KVCache`, :meth:`~DecodingModel.step` feeds tokens and returns
the next logits, and :meth:`~symlit.models.cache.KVCache.select` reorders or drops rows (beams,
finished inputs). :class:`TransformerBase` holds the token embedding, positions, output head and
initialisation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from symlit.models.cache import KVCache
from symlit.models.linear import Linear
from symlit.models.positions import Positions, parse_scheme


@dataclass
class ModelConfig:
    """Hyper-parameters both architectures share (the Hydra ``model`` group, minus ``_target_``).

    ``vocab_size``, ``pad_id``, ``digit_ids`` and ``digits_lsb_first`` come from the tokenizer and task,
    not from YAML.
    """

    vocab_size: int = 0
    pad_id: int = 0
    d_model: int = 256
    n_heads: int = 8
    d_ff: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "gelu"
    norm_first: bool = True
    positions: str = "learned"
    max_positions: int = 1024
    tie_embeddings: bool = True
    abacus_max_digits: int = 32  # longest number (in digits) Abacus positions can index
    abacus_max_offset: int = 0  # Abacus training offsets are drawn from [0, abacus_max_offset]
    digit_rotary_scale: float = 1.0  # *_rotary schemes: digit indices times this are the angles (< 1: longer periods)
    digit_ids: tuple[int, ...] = ()
    digits_lsb_first: tuple[bool, bool] = (False, False)  # (source, result) numbers units first (coupled positions)

    def checks(self) -> dict[str, bool]:
        return {
            "vocab_size": self.vocab_size > 0,
            "d_model": self.d_model > 0 and self.d_model % max(self.n_heads, 1) == 0,
            "n_heads": self.n_heads > 0,
            "d_ff": self.d_ff > 0,
            "dropout": 0.0 <= self.dropout < 1.0,
            "attention_dropout": 0.0 <= self.attention_dropout < 1.0,
            "activation": self.activation in ("gelu", "relu"),
            "max_positions": self.max_positions > 0,
            "abacus_max_digits": self.abacus_max_digits > 0,
            "abacus_max_offset": self.abacus_max_offset >= 0,
            "digit_rotary_scale": self.digit_rotary_scale > 0,
        }

    def __post_init__(self) -> None:
        parse_scheme(self.positions)  # raises naming model.positions
        bad = [name for name, ok in self.checks().items() if not ok]
        if bad:
            name = bad[0]
            hint = {
                "d_model": f"must be positive and divisible by model.n_heads={self.n_heads}",
                "activation": "must be 'gelu' or 'relu'",
                "dropout": "must be in [0, 1)",
                "attention_dropout": "must be in [0, 1)",
                "abacus_max_offset": "must be >= 0",
            }.get(name, "must be positive")
            raise ValueError(f"model.{name}={getattr(self, name)!r} {hint}")


@runtime_checkable
class DecodingModel(Protocol):
    """What decoding, evaluation, training and checkpoints need from an architecture."""

    cfg: ModelConfig

    def __call__(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` of the tokens after each of ``tgt_in (B, T)`` (BOS first)."""
        ...

    def prefill(self, src: Tensor, max_len: int, static: bool = False, compile: bool = False) -> KVCache:
        """Read padded sources ``(B, S)`` into a new cache with room for ``max_len`` fed tokens (BOS included).

        ``compile=True`` runs every later :meth:`step` through one ``torch.compile``-d graph (a
        static cache; the first steps of a process wait for the compiler); ``static=True`` alone
        gives the same fixed-shape computation without compiling.
        """
        ...

    def step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Feed ``tokens (B, T)`` (BOS first, then generated tokens) and return their logits ``(B, T, V)``."""
        ...


class TransformerBase(nn.Module):
    """Token embedding, positions, output head and initialisation, shared by both architectures."""

    Config: type[ModelConfig] = ModelConfig

    def __init__(self, cfg: ModelConfig | None = None, /, **fields: Any) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else self.Config(**fields)
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.embed_scale = math.sqrt(cfg.d_model)
        self.pos = Positions(
            cfg.positions,
            cfg.d_model,
            cfg.n_heads,
            cfg.max_positions,
            tuple(cfg.digit_ids),
            cfg.vocab_size,
            cfg.abacus_max_digits,
            cfg.abacus_max_offset,
            tuple(cfg.digits_lsb_first),
            cfg.digit_rotary_scale,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.lm_head = Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def _finish_init(self) -> None:
        """Initialise weights (call at the end of a subclass's ``__init__``) and tie the output head."""
        self.apply(self._init_weights)  # positions initialise themselves (symlit.models.positions)
        if self.cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module is self.embed:
            nn.init.normal_(module.weight, std=self.cfg.d_model**-0.5)
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def _embed(self, tokens: Tensor, positions: Tensor, digit_index: Tensor | None = None) -> Tensor:
        """Scaled token embeddings plus additive positions ``(B, T, D)``; ``positions (T,)`` or ``(B, T)``."""
        if positions.dim() == 1:
            positions = positions[None]
        return self.drop(self.embed(tokens) * self.embed_scale + self.pos.embed(positions, digit_index))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@functools.cache
def compiled_step(step_stack: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """A model's ``_step_stack`` through ``torch.compile``, made once per process and function.

    Compiled lazily, on the first call, for the shapes of that call. The first change of a
    dimension (rows leaving the batch, another source length or ``max_len``) recompiles once with
    that dimension dynamic (torch's automatic dynamic shapes: a faster steady state on CPU than
    compiling everything dynamic from the start). A new architecture, a batch of one row, a
    chunk of several tokens, or another grad or autocast mode each compile once more; past dynamo's
    recompile limit (8) the steps run eagerly, with a warning from torch.
    """
    return torch.compile(step_stack)
