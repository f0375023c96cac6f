"""Transformers in plain PyTorch behind one decoding interface.

* :class:`Seq2SeqTransformer`: the encoder-decoder (this file);
* :class:`~symlit.causal.CausalTransformer`: the decoder-only model (``symlit/causal.py``).

Both satisfy :class:`DecodingModel`, the only thing decoding, evaluation and the LightningModule
use: ``model(src, tgt_in)`` gives teacher-forced logits, :meth:`~DecodingModel.prefill` reads the
sources into a :class:`KVCache`, :meth:`~DecodingModel.step` feeds tokens and returns the next
logits, and :meth:`KVCache.select` reorders or drops rows (beams, finished inputs). Position schemes
live in :mod:`symlit.positions`. :func:`build_model` builds the class a ``model`` config's
``_target_`` names.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``L`` cache slots, ``D`` model width,
``H`` heads. Masks follow SDPA: a boolean ``True`` means "may attend"; a float mask is added to
the scores.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import hydra.utils
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

from symlit.positions import (  # noqa: F401
    AttentionPositions,
    Positions,
    parse_scheme,
    rotate,
    sinusoidal_table,
)

if TYPE_CHECKING:
    from symlit.tasks.base import Task
    from symlit.tokenizer import Seq2SeqTokenizer


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


class KVCache:
    """Key/value buffers and per-row state for incremental decoding, made by :meth:`DecodingModel.prefill`.

    ``self_kv``: one ``(B, H, L, Dh)`` pair per self-attention layer, written slot by slot as tokens
    are fed. ``cross_kv`` and ``memory_mask`` (encoder-decoder): the encoder output projected once.
    ``rows``: any other per-row state of a model, tensors with the batch first, which :meth:`select`
    reorders with the rows: ``key_valid (B, L)`` (slots that are not padding: a decoder-only prompt's
    padding between source and separator), ``next_pos (B,)`` and ``key_pos (B, L)`` (positions that
    differ per row), ``digit_run (B,)`` (the Abacus index of the last token fed).

    By default a step attends over the filled slots only. A ``static`` cache attends over all
    ``L`` slots under a mask instead, so that every step has the same tensor shapes: what
    ``torch.compile`` needs to run all steps through one compiled graph (``compiled``).
    """

    def __init__(
        self,
        self_kv: list[tuple[Tensor, Tensor]],
        static: bool = False,
        compiled: bool = False,
        cross_kv: list[tuple[Tensor, Tensor]] | None = None,
        memory_mask: Tensor | None = None,
    ) -> None:
        self.self_kv = self_kv
        self.cross_kv = cross_kv or []
        self.memory_mask = memory_mask
        self.static = static or compiled
        self.compiled = compiled
        self.length = 0  # slots filled so far
        self.rows: dict[str, Tensor] = {}

    @property
    def max_len(self) -> int:
        return self.self_kv[0][0].shape[2]

    @property
    def width(self) -> int:
        """Key slots a step attends over: all of them in a static cache, the filled ones otherwise."""
        return self.max_len if self.static else self.length

    def advance(self, new: int) -> Tensor:
        """Claim the next ``new`` slots and return their indices ``(new,)`` (the caller then
        writes them: a step that fails after this leaves the cache unusable)."""
        if self.length + new > self.max_len:
            raise ValueError(f"decoder cache holds {self.max_len} positions; step {self.length + new} exceeds it")
        slots = torch.arange(self.length, self.length + new, device=self.self_kv[0][0].device)
        self.length += new
        return slots

    def self_mask(self, slots: Tensor) -> Tensor | None:
        """Which of the :attr:`width` key slots the tokens at ``slots (T,)`` see, as additive scores
        ``(B|1, 1, T, width)`` (0 or -inf, made once per step for every layer), or ``None`` when a
        single new token sees every filled slot."""
        width = self.width
        mask = None
        if self.static or slots.shape[0] > 1:
            mask = (torch.arange(width, device=slots.device)[None, :] <= slots[:, None])[None, None]
        if "key_valid" in self.rows:
            valid = self.rows["key_valid"][:, None, None, :width]
            mask = valid if mask is None else mask & valid
        return None if mask is None else additive(mask, self.self_kv[0][0].dtype)

    def select(self, index: Tensor, cross: bool = True) -> None:
        """Keep (and reorder) the batch rows ``index`` (a 1-D integer tensor): beam reordering and
        dropping finished rows.

        ``cross=False`` leaves the cross-attention entries alone, for reorderings that stay inside
        groups of rows sharing one source (beams of the same input).
        """
        # index_select: a gather along the batch, ~3x faster than advanced indexing on CPU
        self.self_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.self_kv]
        self.rows = {name: value.index_select(0, index) for name, value in self.rows.items()}
        if cross:
            self.cross_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross_kv]
            if self.memory_mask is not None:
                self.memory_mask = self.memory_mask.index_select(0, index)


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


def additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean mask (``True``: may attend) as additive scores: 0 where allowed, -inf elsewhere."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def _merge(mask: Tensor | None, bias: Tensor | None) -> Tensor | None:
    """One SDPA mask from a mask (boolean or additive) and additive scores (either may be ``None``)."""
    if bias is None:
        return mask
    if mask is None:
        return bias
    return bias + mask if mask.is_floating_point() else bias.masked_fill(~mask, float("-inf"))


def _causal(n: int, device: torch.device) -> Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def _single_query_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Attention of one query per row (a decoding step) as two batched matmuls.

    On CPU, SDPA's flash kernel is tiled for long queries; for a single query this plain form is
    about 2.5x faster (measured in ``benchmarks/bench_vs_bart.py``) and numerically equivalent.
    """
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, 1, L)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:  # in place only when no type promotion is lost (ALiBi's float32 bias on bf16 scores)
            scores = scores.add_(mask) if mask.dtype == scores.dtype else scores + mask
    return torch.softmax(scores, dim=-1) @ v


def _buffer(like: Tensor, shape: tuple[int, ...], static: bool, dtype: torch.dtype | None = None) -> Tensor:
    """A key or value cache buffer. A static cache's is zeroed: it multiplies unfilled slots by zero
    attention weights, and uninitialised memory may hold NaN (NaN * 0 = NaN); a growing cache only
    reads slots it has written."""
    make = like.new_zeros if static else like.new_empty
    return make(shape, dtype=dtype or like.dtype)


ONEDNN_INFERENCE = os.environ.get("SYMLIT_ONEDNN", "1") != "0"
"""Run inference-time linear layers on CPU through oneDNN's prepacked fp32 GEMM (``SYMLIT_ONEDNN=0``
turns it off). Same arithmetic as ``F.linear`` up to fp32 rounding; how much faster it is depends on
the CPU (``experiments/README.md`` has the measurement)."""
ONEDNN_MIN_ROWS = 16  # below this many rows MKL's GEMM is faster than oneDNN's
_packed_weights: WeakIdKeyDictionary = WeakIdKeyDictionary()  # weight -> (version, oneDNN layout)


def _onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether :class:`Linear` may take the oneDNN path for ``x``: CPU fp32 inference without autograd,
    autocast or ``torch.compile`` (which packs weights its own way), and enough rows to pay."""
    return (
        ONEDNN_INFERENCE
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and x.numel() >= ONEDNN_MIN_ROWS * x.shape[-1]
        and _onednn_available()
    )


@functools.cache
def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) whose CPU inference runs on oneDNN.

    Without autograd, its weight is reordered once into oneDNN's blocked layout (again whenever the
    weight changes: a new tensor or an in-place update) and the product runs in oneDNN's fp32 GEMM,
    optionally fused with the activation that follows (``"gelu"``, exact, or ``"relu"``). Training,
    GPUs, autocast and compiled graphs use ``F.linear``. The packed copy (as large as the weight)
    lives until the layer is switched to training mode.
    """

    def train(self, mode: bool = True) -> Linear:
        if mode:  # training does not use the packed copy: free its memory until the next inference
            _packed_weights.pop(self.weight, None)
        return super().train(mode)

    def forward(self, x: Tensor, activation: str = "none") -> Tensor:
        if not _onednn(x, self.weight):
            y = F.linear(x, self.weight, self.bias)
            return y if activation == "none" else F.gelu(y) if activation == "gelu" else F.relu(y)
        key = (self.weight.data_ptr(), self.weight._version)
        packed = _packed_weights.get(self.weight)
        algorithm = "none" if activation == "gelu" else ""  # exact (erf) GELU
        try:
            if packed is None or packed[0] != key:
                packed = (key, torch.ops.mkldnn._reorder_linear_weight(self.weight, None))
                _packed_weights[self.weight] = packed
            return torch.ops.mkldnn._linear_pointwise(x, packed[1], self.bias, activation, [], algorithm)
        except RuntimeError as err:  # a oneDNN build without this kernel (e.g. some ARM builds)
            global ONEDNN_INFERENCE
            ONEDNN_INFERENCE = False
            warnings.warn(f"oneDNN linear failed ({err}); symlit uses F.linear from now on", stacklevel=2)
            return self.forward(x, activation)


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
            out = _single_query_attention(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))


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
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.lm_head = Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def _finish_init(self) -> None:
        """Initialise weights (call at the end of a subclass's ``__init__``) and tie the output head."""
        self.apply(self._init_weights)  # positions initialise themselves (symlit.positions)
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
        mask = _merge(source_mask, attn.bias if attn else None)
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
        self_mask = _merge(_causal(len(positions), src.device), attn.bias) if attn and attn.bias is not None else None
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
        self_kv = [(_buffer(k, shape, static or compile), _buffer(k, shape, static or compile)) for _ in self.decoder]
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
        stack = _compiled(type(self)._step_stack) if cache.compiled else type(self)._step_stack
        return stack(self, tokens, slots, digit_index, cache)

    def _step_stack(self, tokens: Tensor, slots: Tensor, digit_index: Tensor | None, cache: KVCache) -> Tensor:
        x = self._embed(tokens, slots, digit_index)
        attn = self.pos.attention(slots[None], torch.arange(cache.width, device=slots.device)[None])
        mask = _merge(cache.self_mask(slots), attn.bias if attn else None)
        rope = attn.rope if attn else None
        for i, layer in enumerate(self.decoder):
            x = layer(x, None, cache.memory_mask, mask, cache, i, slots, rope)
        return self.lm_head(self.dec_norm(x))


@functools.cache
def _compiled(step_stack: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """A model's ``_step_stack`` through ``torch.compile``, made once per process and function.

    Compiled lazily, on the first call, for the shapes of that call. The first change of a
    dimension (rows leaving the batch, another source length or ``max_len``) recompiles once with
    that dimension dynamic (torch's automatic dynamic shapes: the steady state is ~6 % faster on CPU
    than compiling everything dynamic from the start). A new architecture, a batch of one row, a
    chunk of several tokens, or another grad or autocast mode each compile once more; past dynamo's
    recompile limit (8) the steps run eagerly, with a warning from torch.
    """
    return torch.compile(step_stack)


# ---------------------------------------------------------------------------- building from a config
LEGACY_TARGETS = {"symlit.model.TransformerConfig": "symlit.model.Seq2SeqTransformer"}
"""``_target_`` values of checkpoints written before the model group named the model class."""


def model_class(cfg: dict[str, Any]) -> type[TransformerBase]:
    """The model class a ``model`` config's ``_target_`` names (legacy config targets mapped)."""
    target = cfg.get("_target_", "symlit.model.Seq2SeqTransformer")
    target = LEGACY_TARGETS.get(target, target)
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
