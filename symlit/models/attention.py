"""Multi-head attention over the sequence, the encoder output, or the KV cache.

Shapes: ``B`` batch, ``T`` query length, ``S`` source length, ``L`` cache slots, ``H`` heads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from symlit.models.linear import Linear
from symlit.models.positions import rotate

if TYPE_CHECKING:
    from symlit.models.cache import KVCache


def single_query_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Attention of one query per row (a decoding step) as two batched matmuls.

    On CPU, SDPA's flash kernel is tiled for long queries; for a single query this plain form is
    faster (``benchmarks/bench_vs_bart.py`` measures it) and numerically equivalent.
    """
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, 1, L)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:  # in place only when no type promotion is lost (ALiBi's float32 bias on bf16 scores)
            scores = scores.add_(mask) if mask.dtype == scores.dtype else scores + mask
    return torch.softmax(scores, dim=-1) @ v


class Attention(nn.Module):
    """Multi-head attention; self-attention uses one fused QKV projection."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.cross = cross
        self.dropout = dropout
        if cross:
            self.q_proj = Linear(d_model, d_model)
            self.kv_proj = Linear(d_model, 2 * d_model)
        else:
            self.qkv_proj = Linear(d_model, 3 * d_model)
        self.out_proj = Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, -1).transpose(1, 2)

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values ``(B, H, S, D / H)`` of the encoder output."""
        # contiguous: the CPU attention kernels are ~2x slower on the chunked views
        k, v = (self._heads(t).contiguous() for t in self.kv_proj(memory).chunk(2, dim=-1))
        return k, v

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        mask: Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        layer: int = 0,
        slots: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Attention of ``x`` to itself, or to ``memory`` (cross). With a ``cache``, self-attention writes
        its new keys and values at ``slots`` (the ones :meth:`KVCache.advance` just claimed, the last
        ``T`` filled) and attends over the cache's :attr:`~KVCache.width` slots
        (``mask`` then covers those). ``rope``: rotary angles of ``x``'s positions."""
        if self.cross:
            q = self._heads(self.q_proj(x))
            k, v = cache.cross_kv[layer] if cache is not None else self.memory_kv(memory)
        else:
            q, k, v = (self._heads(t) for t in self.qkv_proj(x).chunk(3, dim=-1))
            if rope is not None:
                q, k = rotate(q, rope), rotate(k, rope)
            if cache is not None:
                k_buf, v_buf = cache.self_kv[layer]
                if cache.compiled:  # one graph for every step: the slots are a tensor input
                    k_buf.index_copy_(2, slots, k)
                    v_buf.index_copy_(2, slots, v)
                else:  # the slots are the last ones claimed: a slice copy is cheaper
                    k_buf[:, :, cache.length - k.shape[2] : cache.length] = k
                    v_buf[:, :, cache.length - v.shape[2] : cache.length] = v
                k, v = (k_buf, v_buf) if cache.static else (k_buf[:, :, : cache.length], v_buf[:, :, : cache.length])
                causal = False  # the mask says which cached slots each query sees
        dropout = self.dropout if self.training else 0.0
        if q.shape[2] == 1 and not causal and dropout == 0.0 and q.device.type == "cpu":
            out = single_query_attention(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))
