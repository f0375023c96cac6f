"""Encoder-decoder transformer in plain PyTorch, with an incremental-decoding cache.

Everything a reader needs is in this file: a config dataclass, attention built on
``torch.nn.functional.scaled_dot_product_attention``, pre-LN or post-LN blocks, learned or
sinusoidal positions, optional tied embeddings, and a :class:`DecoderCache` that makes greedy
and beam search cost one decoder step per generated token.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` model width, ``H`` heads.
Masks follow SDPA: a boolean ``True`` means "may attend".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class TransformerConfig:
    """Hyper-parameters of :class:`Seq2SeqTransformer` (the Hydra ``model`` group)."""

    vocab_size: int = 0
    pad_id: int = 0
    d_model: int = 256
    n_heads: int = 8
    n_encoder_layers: int = 4
    n_decoder_layers: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "gelu"
    norm_first: bool = True
    positions: str = "learned"
    max_positions: int = 1024
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        checks = {
            "vocab_size": self.vocab_size > 0,
            "d_model": self.d_model > 0 and self.d_model % max(self.n_heads, 1) == 0,
            "n_heads": self.n_heads > 0,
            "n_encoder_layers": self.n_encoder_layers >= 1,
            "n_decoder_layers": self.n_decoder_layers >= 1,
            "d_ff": self.d_ff > 0,
            "dropout": 0.0 <= self.dropout < 1.0,
            "attention_dropout": 0.0 <= self.attention_dropout < 1.0,
            "activation": self.activation in ("gelu", "relu"),
            "positions": self.positions in ("learned", "sinusoidal"),
            "max_positions": self.max_positions > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            name = bad[0]
            hint = {
                "d_model": f"must be positive and divisible by model.n_heads={self.n_heads}",
                "activation": "must be 'gelu' or 'relu'",
                "positions": "must be 'learned' or 'sinusoidal'",
                "dropout": "must be in [0, 1)",
                "attention_dropout": "must be in [0, 1)",
            }.get(name, "must be positive")
            raise ValueError(f"model.{name}={getattr(self, name)!r} {hint}")


class DecoderCache:
    """Per-layer key/value buffers for incremental decoding.

    Self-attention keys and values are written into preallocated buffers of length
    ``max_len`` (no re-concatenation per step); cross-attention keys and values are computed
    once from the encoder output.
    """

    def __init__(self, n_layers: int) -> None:
        self.self_kv: list[tuple[Tensor, Tensor] | None] = [None] * n_layers
        self.cross_kv: list[tuple[Tensor, Tensor] | None] = [None] * n_layers
        self.length = 0
        self.max_len = 0

    def select(self, index: Tensor, cross: bool = True) -> None:
        """Keep (and reorder) the batch rows ``index``: beam reordering and dropping finished rows.

        ``cross=False`` leaves the cross-attention entries alone, for reorderings that stay inside
        groups of rows sharing one source (beams of the same input).
        """
        self.self_kv = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.self_kv]
        if cross:
            self.cross_kv = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.cross_kv]


def _single_query_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Attention of one query per row (a decoding step) as two batched matmuls.

    On CPU, SDPA's flash kernel is tiled for long queries; for a single query this plain form is
    about 2.5x faster (measured in ``benchmarks/bench_vs_bart.py``) and numerically equivalent.
    """
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class Attention(nn.Module):
    """Multi-head attention; self-attention uses one fused QKV projection."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.cross = cross
        self.dropout = dropout
        if cross:
            self.q_proj = nn.Linear(d_model, d_model)
            self.kv_proj = nn.Linear(d_model, 2 * d_model)
        else:
            self.qkv_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, -1).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        mask: Tensor | None = None,
        causal: bool = False,
        cache: DecoderCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        if self.cross:
            q = self._heads(self.q_proj(x))
            if cache is not None and cache.cross_kv[layer] is not None:
                k, v = cache.cross_kv[layer]
            else:
                k, v = (self._heads(t) for t in self.kv_proj(memory).chunk(2, dim=-1))
                if cache is not None:  # contiguous once: the CPU attention kernel is ~2x slower on views
                    k, v = k.contiguous(), v.contiguous()
                    cache.cross_kv[layer] = (k, v)
        else:
            q, k, v = (self._heads(t) for t in self.qkv_proj(x).chunk(3, dim=-1))
            if cache is not None:
                if cache.length and q.shape[2] > 1:
                    raise ValueError("a cached decoder step after the first must feed one token at a time")
                k, v = self._append(cache, layer, k, v)
                causal = causal and q.shape[2] > 1  # a single new query may see every cached key
        dropout = self.dropout if self.training else 0.0
        if q.shape[2] == 1 and not causal and dropout == 0.0 and q.device.type == "cpu":
            out = _single_query_attention(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))

    @staticmethod
    def _append(cache: DecoderCache, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        start, new = cache.length, k.shape[2]
        if cache.self_kv[layer] is None:
            shape = (k.shape[0], k.shape[1], cache.max_len, k.shape[3])
            cache.self_kv[layer] = (k.new_empty(shape), v.new_empty(shape))
        k_buf, v_buf = cache.self_kv[layer]
        if start + new > k_buf.shape[2]:
            raise ValueError(f"decoder cache holds {k_buf.shape[2]} positions; step {start + new} exceeds it")
        k_buf[:, :, start : start + new] = k
        v_buf[:, :, start : start + new] = v
        return k_buf[:, :, : start + new], v_buf[:, :, : start + new]


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str) -> None:
        act = nn.GELU() if activation == "gelu" else nn.ReLU()
        super().__init__(nn.Linear(d_model, d_ff), act, nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cross=False)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, cfg.activation)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), mask=mask))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, mask=mask)))
        return self.norm2(x + self.drop(self.ff(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cross=False)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, cross=True)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, cfg.activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, memory: Tensor, memory_mask: Tensor, cache: DecoderCache | None, layer: int
    ) -> Tensor:
        def self_block(h: Tensor) -> Tensor:
            return self.drop(self.self_attn(h, causal=True, cache=cache, layer=layer))

        def cross_block(h: Tensor) -> Tensor:
            return self.drop(self.cross_attn(h, memory, mask=memory_mask, cache=cache, layer=layer))

        if self.norm_first:
            x = x + self_block(self.norm1(x))
            x = x + cross_block(self.norm2(x))
            return x + self.drop(self.ff(self.norm3(x)))
        x = self.norm1(x + self_block(x))
        x = self.norm2(x + cross_block(x))
        return self.norm3(x + self.drop(self.ff(x)))


def sinusoidal_table(n_positions: int, d_model: int) -> Tensor:
    """The fixed position encodings of Vaswani et al. (2017)."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder transformer sharing one token embedding between encoder and decoder.

    ``forward(src, tgt_in)`` returns logits ``(B, T, V)`` for teacher forcing; decoding uses
    :meth:`encode` once and :meth:`decode_step` per token with a :class:`DecoderCache`.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.embed_scale = math.sqrt(cfg.d_model)
        if cfg.positions == "learned":
            self.pos = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            self.register_buffer("pos_table", sinusoidal_table(cfg.max_positions, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        # pre-LN stacks need a final norm; post-LN blocks already end normalised
        self.enc_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        if cfg.positions == "learned":
            # Token embeddings are scaled by sqrt(d_model) to unit size per element; positions start at
            # the same size. Initialised like the tokens (std d_model**-0.5) they would start ~11x
            # smaller at d_model 128, and position-dependent tasks (copying, digit arithmetic) then
            # learn several times more slowly (a copy task: 600 steps instead of 150).
            nn.init.normal_(self.pos.weight, std=1.0)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.cfg.d_model**-0.5)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def _embed(self, tokens: Tensor, offset: int = 0) -> Tensor:
        length = tokens.shape[1]
        if offset + length > self.cfg.max_positions:
            raise ValueError(
                f"sequence of length {offset + length} exceeds model.max_positions={self.cfg.max_positions}"
            )
        positions = torch.arange(offset, offset + length, device=tokens.device)
        pos = self.pos(positions) if self.cfg.positions == "learned" else self.pos_table[positions]
        return self.drop(self.embed(tokens) * self.embed_scale + pos)

    def source_mask(self, src: Tensor) -> Tensor:
        """Boolean ``(B, 1, 1, S)`` mask, ``True`` where the source is not padding."""
        return (src != self.cfg.pad_id)[:, None, None, :]

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder states ``(B, S, D)`` and the source mask."""
        mask = self.source_mask(src)
        x = self._embed(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x), mask

    def decode(
        self, tgt_in: Tensor, memory: Tensor, memory_mask: Tensor, cache: DecoderCache | None = None
    ) -> Tensor:
        """Logits for ``tgt_in``; with a cache, ``tgt_in`` holds only the new positions."""
        offset = cache.length if cache is not None else 0
        x = self._embed(tgt_in, offset)
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, memory_mask, cache, i)
        if cache is not None:
            cache.length += tgt_in.shape[1]
        return self.lm_head(self.dec_norm(x))

    def new_cache(self, max_len: int) -> DecoderCache:
        """An empty cache able to hold ``max_len`` decoder positions."""
        if max_len > self.cfg.max_positions:
            raise ValueError(f"decode length {max_len} exceeds model.max_positions={self.cfg.max_positions}")
        cache = DecoderCache(len(self.decoder))
        cache.max_len = max_len
        return cache

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
