"""Autoregressive decoding for :class:`~symlit.model.Seq2SeqTransformer`, usable without Lightning."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from symlit.model import Seq2SeqTransformer


@dataclass
class Decoded:
    """Generated ids ``(B, L)`` without BOS, padded after EOS; ``finished`` marks rows that emitted EOS."""

    tokens: Tensor
    finished: Tensor
    scores: Tensor  # sum of log-probabilities of the generated tokens (EOS included)


@torch.no_grad()
def greedy_decode(
    model: Seq2SeqTransformer,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    use_cache: bool = True,
) -> Decoded:
    """Greedy decoding of a batch of padded sources.

    With ``use_cache`` (default) each step feeds one token through the decoder and reuses the
    cached keys/values; without it every step recomputes the whole prefix (the reference the
    cache is tested and benchmarked against). Stops when every row has emitted EOS or after
    ``max_len`` tokens.
    """
    batch = src.shape[0]
    pad_id = model.cfg.pad_id
    memory, memory_mask = model.encode(src)
    cache = model.new_cache(max_len) if use_cache else None
    prefix = torch.full((batch, 1), bos_id, dtype=torch.long, device=src.device)
    out = torch.full((batch, max_len), pad_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    scores = torch.zeros(batch, device=src.device)
    step_input = prefix
    never = torch.tensor(sorted({pad_id, bos_id} - {eos_id}), device=src.device)
    for step in range(max_len):
        if use_cache:
            logits = model.decode(step_input, memory, memory_mask, cache)[:, -1]
        else:
            logits = model.decode(prefix, memory, memory_mask)[:, -1]
        logits = logits.float()
        logits[:, never] = float("-inf")  # padding and BOS are never valid outputs
        log_probs = torch.log_softmax(logits, dim=-1)
        best_lp, best = log_probs.max(dim=-1)
        best = best.masked_fill(finished, pad_id)
        scores += best_lp.masked_fill(finished, 0.0)
        out[:, step] = best
        finished |= best == eos_id
        if bool(finished.all()):
            return Decoded(out[:, : step + 1], finished, scores)
        step_input = best[:, None]
        if not use_cache:
            prefix = torch.cat([prefix, step_input], dim=1)
    return Decoded(out, finished, scores)
