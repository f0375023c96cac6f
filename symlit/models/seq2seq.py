"""The encoder-decoder transformer (the decoder-only one: :mod:`symlit.models.causal`).

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``L`` cache slots, ``D`` model width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from symlit.models.base import ModelConfig, TransformerBase, compiled_step
from symlit.models.cache import KVCache, cache_buffer
from symlit.models.layers import DecoderLayer, SelfAttentionLayer
from symlit.models.masks import additive, causal_mask, merge_masks
from symlit.models.positions import parse_scheme


@dataclass
class TransformerConfig(ModelConfig):
    """Hyper-parameters of :class:`Seq2SeqTransformer`."""

    n_encoder_layers: int = 4
    n_decoder_layers: int = 4

    def checks(self) -> dict[str, bool]:
        return {
            **super().checks(),
            "n_encoder_layers": self.n_encoder_layers >= 1,
            "n_decoder_layers": self.n_decoder_layers >= 1,
        }

    def __post_init__(self) -> None:
        super().__post_init__()
        if parse_scheme(self.positions) == ("", "none"):
            raise ValueError(
                "model.positions='none' is for the decoder-only model (model=gpt_small): an encoder without "
                "positions sees its input as a bag of tokens; choose learned, sinusoidal, rope, alibi or abacus+..."
            )
        if parse_scheme(self.positions)[0].endswith(("_rotary", "_alibi")):
            raise ValueError(
                f"model.positions={self.positions!r} is for the decoder-only model (model=gpt_small): here source "
                "and result digits meet in cross-attention, which has no positions; choose abacus or coupled"
            )


class Seq2SeqTransformer(TransformerBase):
    """Encoder-decoder transformer sharing one token embedding between encoder and decoder.

    ``forward(src, tgt_in)`` returns logits ``(B, T, V)`` for teacher forcing; decoding uses
    :meth:`prefill` (encode, project the cross-attention keys once) then :meth:`step` per token.
    """

    Config = TransformerConfig
    cfg: TransformerConfig

    def __init__(self, cfg: TransformerConfig | None = None, /, **fields: Any) -> None:
        super().__init__(cfg, **fields)
        cfg = self.cfg
        self.encoder = nn.ModuleList(SelfAttentionLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        # pre-LN stacks need a final norm; post-LN blocks already end normalised
        self.enc_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self._finish_init()

    def source_mask(self, src: Tensor) -> Tensor:
        """Boolean ``(B, 1, 1, S)`` mask, ``True`` where the source is not padding."""
        return (src != self.cfg.pad_id)[:, None, None, :]

    def _digits(
        self, tokens: Tensor, offset: Tensor | None, generated: bool = False, source: bool = False
    ) -> Tensor | None:
        if not self.pos.abacus:
            return None
        return self.pos.digit_indices(tokens, offset=offset, generated=generated, source=source)

    def encode(self, src: Tensor, offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Encoder states ``(B, S, D)`` and the source mask (``offset``: Abacus training offsets ``(B,)``)."""
        source_mask = self.source_mask(src)
        positions = torch.arange(src.shape[1], device=src.device)
        self.pos.check_length(positions)
        x = self._embed(src, positions, self._digits(src, offset, source=True))
        attn = self.pos.attention(positions[None])
        mask = merge_masks(source_mask, attn.bias if attn else None)
        rope = attn.rope if attn else None
        for layer in self.encoder:
            x = layer(x, mask, rope=rope)
        return self.enc_norm(x), source_mask

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        offset = self.pos.draw_offset(src.shape[0], src.device)
        memory, memory_mask = self.encode(src, offset)
        positions = torch.arange(tgt_in.shape[1], device=tgt_in.device)
        self.pos.check_length(positions)
        attn = self.pos.attention(positions[None])
        self_mask = (
            merge_masks(causal_mask(len(positions), src.device), attn.bias) if attn and attn.bias is not None else None
        )
        # outside training the targets may be the model's own output (decoding without a cache):
        # read their digits as a decoding step does (Positions.digit_indices)
        x = self._embed(tgt_in, positions, self._digits(tgt_in, offset, generated=not self.training))
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, memory_mask, self_mask, None, i, rope=attn.rope if attn else None)
        return self.lm_head(self.dec_norm(x))

    def prefill(self, src: Tensor, max_len: int, static: bool = False, compile: bool = False) -> KVCache:
        """Encode ``src`` and make a cache for decoding up to ``max_len`` tokens (see :class:`DecodingModel`)."""
        if max_len > self.cfg.max_positions and self.pos.base in ("learned", "sinusoidal"):
            raise ValueError(f"decode length {max_len} exceeds model.max_positions={self.cfg.max_positions}")
        memory, _ = self.encode(src)
        cross_kv = [layer.cross_attn.memory_kv(memory) for layer in self.decoder]
        k = cross_kv[0][0]
        shape = (k.shape[0], k.shape[1], max_len, k.shape[3])  # same dtype as the keys to come (autocast)
        self_kv = [
            (cache_buffer(k, shape, static or compile), cache_buffer(k, shape, static or compile)) for _ in self.decoder
        ]
        cache = KVCache(self_kv, static, compile, cross_kv, additive(self.source_mask(src), k.dtype))
        if self.pos.abacus:
            cache.rows["digit_run"] = torch.zeros(src.shape[0], dtype=torch.long, device=src.device)
        return cache

    def step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Logits ``(B, T, V)`` of ``tokens (B, T)`` fed after the cache's previous tokens."""
        slots = cache.advance(tokens.shape[1])  # (T,): decoder positions = cache slots
        digit_index = None
        if self.pos.abacus:
            digit_index = self.pos.digit_indices(tokens, cache.rows["digit_run"], generated=True)
            cache.rows["digit_run"] = digit_index[:, -1]
        stack = compiled_step(type(self)._step_stack) if cache.compiled else type(self)._step_stack
        return stack(self, tokens, slots, digit_index, cache)

    def _step_stack(self, tokens: Tensor, slots: Tensor, digit_index: Tensor | None, cache: KVCache) -> Tensor:
        x = self._embed(tokens, slots, digit_index)
        attn = self.pos.attention(slots[None], torch.arange(cache.width, device=slots.device)[None])
        mask = merge_masks(cache.self_mask(slots), attn.bias if attn else None)
        rope = attn.rope if attn else None
        for i, layer in enumerate(self.decoder):
            x = layer(x, None, cache.memory_mask, mask, cache, i, slots, rope)
        return self.lm_head(self.dec_norm(x))
