"""Transformer blocks: feed-forward, the self-attention layer (encoder layer, decoder-only block)
and the encoder-decoder's decoder layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from symlit.models.attention import Attention
from symlit.models.base import ModelConfig
from symlit.models.linear import Linear

if TYPE_CHECKING:
    from symlit.models.cache import KVCache


class FeedForward(nn.Sequential):
    """Linear, activation, dropout, linear (a ``Sequential``: its state-dict keys are ``0.*`` and ``3.*``)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str) -> None:
        act = nn.GELU() if activation == "gelu" else nn.ReLU()
        super().__init__(Linear(d_model, d_ff), act, nn.Dropout(dropout), Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        first, act, drop, second = self
        if drop.p == 0.0 or not self.training:  # the activation can run inside the first product
            return second(first(x, "gelu" if isinstance(act, nn.GELU) else "relu"))
        return second(drop(act(first(x))))


class SelfAttentionLayer(nn.Module):
    """Self-attention and feed-forward, pre-LN or post-LN: an encoder layer, or a decoder-only block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cross=False)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, cfg.activation)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        causal: bool = False,
        cache: KVCache | None = None,
        layer: int = 0,
        slots: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        def attend(h: Tensor) -> Tensor:
            return self.drop(self.attn(h, mask=mask, causal=causal, cache=cache, layer=layer, slots=slots, rope=rope))

        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.drop(self.ff(x)))


EncoderLayer = SelfAttentionLayer


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cross=False)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cross=True)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, cfg.activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        memory_mask: Tensor,
        self_mask: Tensor | None,
        cache: KVCache | None,
        layer: int,
        slots: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        causal = self_mask is None and cache is None

        def self_block(h: Tensor) -> Tensor:
            return self.drop(
                self.self_attn(h, mask=self_mask, causal=causal, cache=cache, layer=layer, slots=slots, rope=rope)
            )

        def cross_block(h: Tensor) -> Tensor:
            return self.drop(self.cross_attn(h, memory, mask=memory_mask, cache=cache, layer=layer))

        if self.norm_first:
            x = x + self_block(self.norm1(x))
            x = x + cross_block(self.norm2(x))
            return x + self.drop(self.ff(self.norm3(x)))
        x = self.norm1(x + self_block(x))
        x = self.norm2(x + cross_block(x))
        return self.norm3(x + self.drop(self.ff(x)))
