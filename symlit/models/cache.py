"""The key/value cache of incremental decoding, shared by both architectures."""

from __future__ import annotations

import torch
from torch import Tensor

from symlit.models.masks import additive


class KVCache:
    """Key/value buffers and per-row state for incremental decoding, made by :meth:`DecodingModel.prefill`.

    ``self_kv``: one ``(B, H, L, Dh)`` pair per self-attention layer, written slot by slot as tokens
    are fed. ``cross_kv`` and ``memory_mask`` (encoder-decoder): the encoder output projected once.
    ``rows``: any other per-row state of a model, tensors with the batch first, which :meth:`select`
    reorders with the rows: ``key_valid (B, L)`` (slots that are not padding: a decoder-only prompt's
    padding between source and separator), ``next_pos (B,)`` and ``key_pos (B, L)`` (positions that
    differ per row), ``digit_run (B,)`` (the Abacus index of the last token fed), ``key_digit (B, L)``
    (the digit index of every slot, for digit ALiBi).

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
        # index_select: a gather along the batch, faster than advanced indexing on CPU
        self.self_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.self_kv]
        self.rows = {name: value.index_select(0, index) for name, value in self.rows.items()}
        if cross:
            self.cross_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross_kv]
            if self.memory_mask is not None:
                self.memory_mask = self.memory_mask.index_select(0, index)


def cache_buffer(like: Tensor, shape: tuple[int, ...], static: bool, dtype: torch.dtype | None = None) -> Tensor:
    """A key or value cache buffer. A static cache's is zeroed: it multiplies unfilled slots by zero
    attention weights, and uninitialised memory may hold NaN (NaN * 0 = NaN); a growing cache only
    reads slots it has written."""
    make = like.new_zeros if static else like.new_empty
    return make(shape, dtype=dtype or like.dtype)
