"""Decoder-only (GPT-style, pre-LN by default) transformer behind the same decoding interface.

The input is the source tokens, a separator, then the target tokens. The separator is the
target's BOS, so the training batches of the encoder-decoder serve unchanged: ``forward(src,
tgt_in)`` runs ``[src, tgt_in]`` through one causal stack and returns the logits of the target
positions only ``(B, T, V)``, so the loss covers target tokens only. Sources are right-padded; the
padding between a short source and its separator is masked out, and positions count only real
tokens, so every row reads ``source, BOS, target`` at contiguous positions. The KV cache covers
prompt plus generated tokens.

Optional looped layers (``n_loops > 1``, McLeish et al. 2024): the stack of ``n_layers`` layers is
applied ``n_loops`` times with shared weights, and the embedded input is added back before every
loop after the first ("input injection").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from symlit.models.base import ModelConfig, TransformerBase, compiled_step
from symlit.models.cache import KVCache, cache_buffer
from symlit.models.layers import SelfAttentionLayer
from symlit.models.masks import causal_mask, merge_masks


@dataclass
class CausalConfig(ModelConfig):
    """Hyper-parameters of :class:`CausalTransformer`."""

    n_layers: int = 4
    n_loops: int = 1  # apply the layer stack this many times with shared weights (input injection)

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "n_layers": self.n_layers >= 1, "n_loops": self.n_loops >= 1}


class CausalTransformer(TransformerBase):
    """Decoder-only transformer: ``[source, BOS, target]`` through one causal stack (see the module docstring)."""

    Config = CausalConfig
    cfg: CausalConfig

    def __init__(self, cfg: CausalConfig | None = None, /, **fields: Any) -> None:
        super().__init__(cfg, **fields)
        cfg = self.cfg
        self.layers = nn.ModuleList(SelfAttentionLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self._finish_init()

    def _stack(
        self,
        tokens: Tensor,
        positions: Tensor,
        digit_index: Tensor | None,
        mask: Tensor | None,
        key_pos: Tensor,
        cache: KVCache | None = None,
        slots: Tensor | None = None,
        key_digit: Tensor | None = None,
    ) -> Tensor:
        """Hidden states ``(B, T, D)`` of ``tokens`` at ``positions (B, T)``; ``mask=None`` means plain causal.
        ``key_pos`` and ``key_digit`` (digit ALiBi): positions and digit indices of the keys."""
        x = emb = self._embed(tokens, positions, digit_index)
        attn = self.pos.attention(positions, key_pos, digit_index, key_digit)
        rope = attn.rope if attn else None
        mask = merge_masks(
            causal_mask(tokens.shape[1], tokens.device)
            if mask is None and cache is None and attn and attn.bias is not None
            else mask,
            attn.bias if attn else None,
        )
        causal = mask is None and cache is None
        n = len(self.layers)
        for loop in range(self.cfg.n_loops):
            if loop:
                x = x + emb  # input injection
            for i, layer in enumerate(self.layers):
                x = layer(x, mask, causal, cache, loop * n + i, slots, rope)
        return self.norm(x)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        tokens = torch.cat([src, tgt_in], dim=1)  # (B, S + T): source, BOS (the separator), target
        real = torch.cat([src != self.cfg.pad_id, torch.ones_like(tgt_in, dtype=torch.bool)], dim=1)
        positions = real.long().cumsum(1) - 1  # (B, S + T): padding inside the source is skipped
        self.pos.check_length(positions)
        mask = None
        if not bool(real.all()):  # causal and not padding
            mask = causal_mask(tokens.shape[1], tokens.device)[None, None] & real[:, None, None, :]
        offset = self.pos.draw_offset(src.shape[0], src.device)
        digit_index = None
        if self.pos.abacus:  # the target read as a decoding step reads it: it may be the model's own output
            source = self.pos.digit_indices(src, offset=offset, source=True)  # (B, S)
            target = self.pos.digit_indices(tgt_in, offset=offset, generated=not self.training)  # (B, T)
            digit_index = torch.cat([source, target], dim=1)  # (B, S + T)
        hidden = self._stack(tokens, positions, digit_index, mask, positions)
        return self.lm_head(hidden[:, src.shape[1] :])  # (B, T, V): target positions only

    def prefill(self, src: Tensor, max_len: int, static: bool = False, compile: bool = False) -> KVCache:
        """Run the sources through the stack into a cache with room for ``max_len`` more tokens."""
        batch, width = src.shape
        real = src != self.cfg.pad_id
        longest = int(real.sum(1).max()) + max_len if batch else 0
        if longest > self.cfg.max_positions and self.pos.base in ("learned", "sinusoidal"):
            raise ValueError(
                f"source plus decode length {longest} exceeds model.max_positions={self.cfg.max_positions}"
            )
        heads, head_dim = self.cfg.n_heads, self.cfg.d_model // self.cfg.n_heads
        dtype = torch.get_autocast_dtype(src.device.type) if torch.is_autocast_enabled(src.device.type) else None
        dtype = dtype or self.embed.weight.dtype
        shape = (batch, heads, width + max_len, head_dim)
        fixed = static or compile
        self_kv = [
            (cache_buffer(src, shape, fixed, dtype), cache_buffer(src, shape, fixed, dtype))
            for _ in range(len(self.layers) * self.cfg.n_loops)
        ]
        cache = KVCache(self_kv, static, compile)
        cache.rows["next_pos"] = torch.zeros(batch, dtype=torch.long, device=src.device)
        cache.rows["key_pos"] = torch.zeros(batch, width + max_len, dtype=torch.long, device=src.device)
        if not bool(real.all()):
            cache.rows["key_valid"] = torch.ones(batch, width + max_len, dtype=torch.bool, device=src.device)
        if self.pos.abacus:
            cache.rows["digit_run"] = torch.zeros(batch, dtype=torch.long, device=src.device)
        if self.pos.digit_alibi:
            cache.rows["key_digit"] = torch.zeros(batch, width + max_len, dtype=torch.long, device=src.device)
        if width:
            self._feed(src, cache, source=True)  # a prompt is never compiled: its width varies from batch to batch
        return cache

    def step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Logits ``(B, T, V)`` of ``tokens (B, T)`` fed after the cache's previous tokens."""
        return self._feed(tokens, cache, logits=True)

    def _feed(self, tokens: Tensor, cache: KVCache, logits: bool = False, source: bool = False) -> Tensor | None:
        slots = cache.advance(tokens.shape[1])  # (T,)
        real = tokens != self.cfg.pad_id  # (B, T): only a prompt has padding
        rows = cache.rows
        positions = rows["next_pos"][:, None] + real.long().cumsum(1) - 1  # (B, T)
        rows["next_pos"] = rows["next_pos"] + real.sum(1)
        rows["key_pos"][:, slots] = positions
        if "key_valid" in rows:
            rows["key_valid"][:, slots] = real
        digit_index = None
        if self.pos.abacus:
            digit_index = self.pos.digit_indices(tokens, rows["digit_run"], generated=logits, source=source)
            rows["digit_run"] = digit_index[:, -1]
        key_digit = None
        if self.pos.digit_alibi:
            rows["key_digit"][:, slots] = digit_index
            key_digit = rows["key_digit"][:, : cache.width]
        if not logits:
            key_pos = rows["key_pos"][:, : cache.width]
            self._stack(tokens, positions, digit_index, cache.self_mask(slots), key_pos, cache, slots, key_digit)
            return None
        stack = compiled_step(type(self)._step_stack) if cache.compiled else type(self)._step_stack
        return stack(self, tokens, positions, digit_index, slots, cache)

    def _step_stack(
        self, tokens: Tensor, positions: Tensor, digit_index: Tensor | None, slots: Tensor, cache: KVCache
    ) -> Tensor:
        key_pos = cache.rows["key_pos"][:, : cache.width]
        key_digit = cache.rows["key_digit"][:, : cache.width] if self.pos.digit_alibi else None
        hidden = self._stack(tokens, positions, digit_index, cache.self_mask(slots), key_pos, cache, slots, key_digit)
        return self.lm_head(hidden)
