"""Attention masks as SDPA takes them: a boolean ``True`` means "may attend"; a float mask is
added to the scores. Shared by both architectures and the KV cache."""

from __future__ import annotations

import torch
from torch import Tensor


def additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean mask (``True``: may attend) as additive scores: 0 where allowed, -inf elsewhere."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def merge_masks(mask: Tensor | None, bias: Tensor | None) -> Tensor | None:
    """One SDPA mask from a mask (boolean or additive) and additive scores (either may be ``None``)."""
    if bias is None:
        return mask
    if mask is None:
        return bias
    return bias + mask if mask.is_floating_point() else bias.masked_fill(~mask, float("-inf"))


def causal_mask(n: int, device: torch.device) -> Tensor:
    """Boolean ``(n, n)`` mask: position ``i`` sees positions ``0..i``."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()
