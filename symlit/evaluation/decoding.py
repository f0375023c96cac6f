"""Autoregressive decoding for any :class:`~symlit.models.base.DecodingModel`, usable without Lightning.

Three strategies share one output type, :class:`NBest` (``N`` hypotheses per input, best first):

* :func:`greedy_decode`: the most likely token at every step (``N = 1``);
* :func:`beam_search`: batched over inputs and beams, with a length penalty, early stopping and
  n-best lists;
* :func:`sample_decode`: ancestral sampling with a temperature (and optional top-k).

All of them use only the model's decoding interface (``prefill`` a cache from the sources, ``step``
tokens through it, ``cache.select`` rows), so they work unchanged for the encoder-decoder and the
decoder-only model. ``use_cache=False`` recomputes the whole prefix with ``model(src, prefix)`` at
every step: the reference the cache is tested and benchmarked against. They never emit PAD or BOS,
stop after ``max_len`` tokens, and drop finished inputs from the batch so the remaining ones run
faster. :func:`decode` dispatches on a :class:`DecodeConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from symlit.models.base import DecodingModel
from symlit.models.cache import KVCache


@dataclass
class DecodeConfig:
    """How to decode (the Hydra ``decode`` block of ``symlit-eval`` and of training's final test)."""

    strategy: str = "greedy"  # greedy | beam | sample
    beam_size: int = 1
    length_penalty: float = 1.0  # beam score = sum of log-probs / length ** length_penalty
    early_stopping: bool = True  # beam: stop an input once it has beam_size finished hypotheses
    temperature: float = 1.0  # sample
    top_k: int = 0  # sample: keep the k most likely tokens (0 = all)
    num_samples: int = 1  # sample: hypotheses per input
    max_len: int | None = None  # longest hypothesis in tokens; None = decided by the caller
    seed: int = 0  # sample
    compile: bool = False  # run decoder steps through torch.compile (see DecodingModel.prefill)

    def __post_init__(self) -> None:
        if self.strategy not in ("greedy", "beam", "sample"):
            raise ValueError(f"decode.strategy={self.strategy!r} must be greedy, beam or sample")
        if self.beam_size < 1:
            raise ValueError(f"decode.beam_size={self.beam_size} must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"decode.temperature={self.temperature} must be > 0 (use strategy=greedy for argmax)")
        if self.num_samples < 1 or self.top_k < 0:
            raise ValueError(f"decode.num_samples={self.num_samples} must be >= 1 and decode.top_k={self.top_k} >= 0")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"decode.max_len={self.max_len} must be >= 1")


@dataclass
class NBest:
    """``N`` hypotheses per input, sorted by ``scores`` (best first).

    ``tokens (B, N, L)``: generated ids without BOS, ending with EOS when ``finished``, padded after.
    ``scores (B, N)``: the ranking score (the length-normalised log-probability for beam search,
    the sum of log-probabilities otherwise). ``log_probs (B, N)``: sum of the token log-probabilities
    (EOS included). ``finished (B, N)``: whether the hypothesis emitted EOS within ``max_len``.
    """

    tokens: Tensor
    scores: Tensor
    log_probs: Tensor
    finished: Tensor

    def best(self) -> Decoded:
        """The top hypothesis of every input."""
        return Decoded(self.tokens[:, 0], self.finished[:, 0], self.log_probs[:, 0])


@dataclass
class Decoded:
    """One hypothesis per input: ids ``(B, L)`` without BOS, padded after EOS; ``finished`` marks EOS."""

    tokens: Tensor
    finished: Tensor
    scores: Tensor  # sum of log-probabilities of the generated tokens (EOS included)


def _never_tokens(model: DecodingModel, bos_id: int, eos_id: int, device: torch.device) -> Tensor:
    return torch.tensor(sorted({model.cfg.pad_id, bos_id} - {eos_id}), device=device)


def _step_log_probs(
    model: DecodingModel,
    step_input: Tensor,
    prefix: Tensor,
    src: Tensor,
    cache: KVCache | None,
    never: Tensor,
) -> Tensor:
    """Log-probabilities ``(rows, V)`` of the next token, PAD and BOS excluded."""
    if cache is not None:
        logits = model.step(step_input, cache)[:, -1]
    else:
        logits = model(src, prefix)[:, -1]
    logits = logits.float()
    logits[:, never] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


@torch.no_grad()
def _ancestral(
    model: DecodingModel,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    use_cache: bool,
    pick: Callable[[Tensor], Tensor],
    compile: bool = False,
) -> Decoded:
    """Token-by-token decoding where ``pick(log_probs)`` chooses each row's next token."""
    batch, device = src.shape[0], src.device
    pad_id = model.cfg.pad_id
    cache = model.prefill(src, max_len, compile=compile) if use_cache else None
    out = torch.full((batch, max_len), pad_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    scores = torch.zeros(batch, device=device)
    never = _never_tokens(model, bos_id, eos_id, device)
    rows = torch.arange(batch, device=device)  # original index of every row still in the batch
    alive = torch.ones(batch, dtype=torch.bool, device=device)  # rows in the batch that have not ended
    prefix = torch.full((batch, 1), bos_id, dtype=torch.long, device=device)
    step_input = prefix
    for step in range(max_len):
        log_probs = _step_log_probs(model, step_input, prefix, src, cache, never)  # (b, V)
        token = torch.where(alive, pick(log_probs), pad_id)  # (b,): rows that ended write padding
        out[:, step].index_copy_(0, rows, token)
        scores.index_add_(0, rows, torch.where(alive, log_probs.gather(1, token[:, None]).squeeze(1), 0.0))
        alive = alive & (token != eos_id)  # a row ends at its EOS: ~alive is "finished"
        n_alive = int(alive.sum())
        if not n_alive:
            break
        step_input = token[:, None]
        if cache is None:  # only recomputation needs the whole prefix
            prefix = torch.cat([prefix, step_input], dim=1)
        # Drop ended rows once they are a quarter of the batch: copying the cache for every row
        # that ends costs more than decoding a few ended rows along with the rest.
        if (len(alive) - n_alive) * 4 >= len(alive):
            finished[rows[~alive]] = True
            keep = alive.nonzero().squeeze(1)
            rows, step_input, alive = rows[keep], step_input[keep], alive[keep]
            if cache is not None:
                cache.select(keep)
            else:
                prefix, src = prefix[keep], src[keep]
    finished[rows[~alive]] = True
    last = int(out.ne(pad_id).sum(1).max()) if batch else 0
    return Decoded(out[:, : max(last, 1)], finished, scores)


def greedy_decode(
    model: DecodingModel,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    use_cache: bool = True,
    compile: bool = False,
) -> Decoded:
    """Greedy decoding of a batch of padded sources ``(B, S)``.

    Stops a row when it emits EOS, and the batch after ``max_len`` tokens. ``scores`` are the sums
    of the chosen tokens' log-probabilities. ``compile`` runs the decoder steps through
    ``torch.compile`` (the same tokens up to rounding in near ties, faster once compiled; see
    :meth:`~symlit.models.base.DecodingModel.prefill`).
    """
    return _ancestral(model, src, bos_id, eos_id, max_len, use_cache, lambda lp: lp.argmax(dim=-1), compile)


def sample_decode(
    model: DecodingModel,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    use_cache: bool = True,
    compile: bool = False,
) -> NBest:
    """``num_samples`` hypotheses per input drawn from the model at ``temperature``.

    Scores are the sums of the model's (untempered) log-probabilities, so samples are ranked by
    how likely the model finds them; duplicates are kept.
    """
    generator = torch.Generator(device=src.device).manual_seed(seed)

    def pick(log_probs: Tensor) -> Tensor:
        logits = log_probs / temperature
        if top_k:
            kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)

    batch = src.shape[0]
    out = _ancestral(model, src.repeat_interleave(num_samples, 0), bos_id, eos_id, max_len, use_cache, pick, compile)
    tokens = out.tokens.view(batch, num_samples, -1)
    log_probs, finished = out.scores.view(batch, num_samples), out.finished.view(batch, num_samples)
    # finished samples first, then by log-probability
    order = torch.argsort(log_probs, dim=1, descending=True, stable=True)
    order = order.gather(1, torch.argsort(finished.gather(1, order).int(), dim=1, descending=True, stable=True))
    return NBest(
        tokens.gather(1, order[..., None].expand_as(tokens)),
        log_probs.gather(1, order),
        log_probs.gather(1, order),
        finished.gather(1, order),
    )


@torch.no_grad()
def beam_search(
    model: DecodingModel,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
    use_cache: bool = True,
    compile: bool = False,
) -> NBest:
    """Batched beam search: ``beam_size`` hypotheses per input, best first.

    A hypothesis of ``n`` tokens (EOS included) scores ``sum(log p) / n ** length_penalty``. At each
    step the ``2 * beam_size`` best extensions of an input's beams are ranked; an extension ending in
    EOS joins the input's finished list if it ranks within the first ``beam_size``, the best
    ``beam_size`` others stay alive. An input is done when it has ``beam_size`` finished hypotheses
    and either ``early_stopping`` is on or no alive beam can still beat the worst finished one
    (an exact bound: log-probabilities only decrease). Inputs with fewer than ``beam_size``
    finished hypotheses after ``max_len`` steps are filled with their best unfinished beams.
    With ``early_stopping`` (or ``length_penalty=0``), ``beam_size=1`` gives exactly the greedy
    hypothesis; without it, a longer hypothesis with a better normalised score may win.
    """
    k, device = beam_size, src.device
    batch, pad_id = src.shape[0], model.cfg.pad_id
    never = _never_tokens(model, bos_id, eos_id, device)
    neg_inf = float("-inf")

    cache = None
    if use_cache:  # read each source once, then copy its cache rows to its k beams
        cache = model.prefill(src, max_len, compile=compile)
        cache.select(torch.arange(batch, device=device).repeat_interleave(k))
    src = src.repeat_interleave(k, 0)  # (batch * k, S): read only by recomputation

    # outputs for every input, filled as inputs finish
    out_tokens = torch.full((batch, k, max_len), pad_id, dtype=torch.long, device=device)
    out_scores = torch.full((batch, k), neg_inf, device=device)
    out_sums = torch.full((batch, k), neg_inf, device=device)
    out_finished = torch.zeros((batch, k), dtype=torch.bool, device=device)

    rows = torch.arange(batch, device=device)  # original index of each input still searching
    alive_seq = torch.full((batch, k, max_len), pad_id, dtype=torch.long, device=device)
    alive_sum = torch.full((batch, k), neg_inf, device=device)
    alive_sum[:, 0] = 0.0  # all beams start equal: only the first may expand at step 0
    fin_seq = alive_seq.clone()
    fin_score = torch.full((batch, k), neg_inf, device=device)
    fin_sum = fin_score.clone()
    prefix = torch.full((batch * k, 1), bos_id, dtype=torch.long, device=device)
    step_input = prefix

    def flush(which: Tensor, length: int) -> None:
        """Write the results of local inputs ``which`` into the outputs (unfinished beams fill gaps)."""
        n_alive_score = alive_sum[which] / float(length) ** length_penalty
        scores = torch.cat([fin_score[which], n_alive_score], dim=1)
        finished = torch.cat([torch.isfinite(fin_score[which]), torch.zeros_like(n_alive_score, dtype=torch.bool)], 1)
        # finished before unfinished, each by score (two stable sorts: no precision lost to an offset)
        order = torch.argsort(torch.nan_to_num(scores, neginf=-1e30), dim=1, descending=True, stable=True)
        order = order.gather(1, torch.argsort(finished.gather(1, order).int(), dim=1, descending=True, stable=True))
        order = order[:, :k]
        seqs = torch.cat([fin_seq[which], alive_seq[which]], dim=1)
        sums = torch.cat([fin_sum[which], alive_sum[which]], dim=1)
        target = rows[which]
        out_tokens[target] = seqs.gather(1, order[..., None].expand(-1, -1, max_len))
        out_scores[target] = scores.gather(1, order)
        out_sums[target] = sums.gather(1, order)
        out_finished[target] = finished.gather(1, order)

    for step in range(max_len):
        n = rows.shape[0]
        log_probs = _step_log_probs(model, step_input, prefix, src, cache, never)
        vocab = log_probs.shape[-1]
        total = (alive_sum[..., None] + log_probs.view(n, k, vocab)).view(n, k * vocab)
        cand_sum, flat = total.topk(min(2 * k, k * vocab), dim=1)
        beam, token = flat // vocab, flat % vocab
        length = step + 1
        cand_seq = alive_seq.gather(1, beam[..., None].expand(-1, -1, max_len)).clone()
        cand_seq[:, :, step] = token

        # extensions ending in EOS within the first k ranks join the finished lists
        rank_ok = torch.arange(cand_sum.shape[1], device=device)[None, :] < k
        is_eos = token == eos_id
        new_fin = torch.where(is_eos & rank_ok & torch.isfinite(cand_sum), cand_sum / length**length_penalty, neg_inf)
        merged = torch.cat([fin_score, new_fin], dim=1)
        fin_score, pick = merged.topk(k, dim=1)
        fin_sum = torch.cat([fin_sum, cand_sum], dim=1).gather(1, pick)
        fin_seq = torch.cat([fin_seq, cand_seq], dim=1).gather(1, pick[..., None].expand(-1, -1, max_len))

        # the best k extensions not ending in EOS stay alive
        alive_sum, keep = torch.where(is_eos, neg_inf, cand_sum).topk(k, dim=1)
        alive_beam, alive_tok = beam.gather(1, keep), token.gather(1, keep)
        alive_seq = cand_seq.gather(1, keep[..., None].expand(-1, -1, max_len))

        n_fin = torch.isfinite(fin_score).sum(1)
        if early_stopping:
            done = n_fin == k
        else:
            horizon = max_len if length_penalty > 0 else length
            best_possible = alive_sum[:, 0] / float(horizon) ** length_penalty
            done = (n_fin == k) & ~(best_possible > fin_score[:, -1])
        if step == max_len - 1:
            done = torch.ones_like(done)
        if bool(done.any()):
            flush(done.nonzero().squeeze(1), length)
            if bool(done.all()):
                break

        source_row = (torch.arange(n, device=device) * k)[:, None] + alive_beam  # (n, k) rows of the last step
        keep_inputs = (~done).nonzero().squeeze(1)
        index = source_row[keep_inputs].reshape(-1)
        if cache is not None:
            cache.select(index, cross=bool(done.any()))
        step_input = alive_tok[keep_inputs].reshape(-1, 1)
        if cache is None:  # only recomputation needs the whole prefix
            prefix = torch.cat([prefix[index], step_input], dim=1)
        if bool(done.any()):
            rows = rows[keep_inputs]
            alive_seq, alive_sum = alive_seq[keep_inputs], alive_sum[keep_inputs]
            fin_seq, fin_score, fin_sum = fin_seq[keep_inputs], fin_score[keep_inputs], fin_sum[keep_inputs]
            src = src[index]

    last = int(out_tokens.ne(pad_id).sum(-1).max()) if batch else 0
    return NBest(out_tokens[:, :, : max(last, 1)], out_scores, out_sums, out_finished)


def decode(model: DecodingModel, src: Tensor, bos_id: int, eos_id: int, config: DecodeConfig) -> NBest:
    """Decode ``src`` as ``config`` says (``config.max_len`` must be set)."""
    if config.max_len is None:
        raise ValueError("decode.max_len must be set")
    if config.strategy == "beam":
        return beam_search(
            model,
            src,
            bos_id,
            eos_id,
            config.max_len,
            config.beam_size,
            config.length_penalty,
            config.early_stopping,
            compile=config.compile,
        )
    if config.strategy == "sample":
        return sample_decode(
            model,
            src,
            bos_id,
            eos_id,
            config.max_len,
            config.num_samples,
            config.temperature,
            config.top_k,
            config.seed,
            compile=config.compile,
        )
    out = greedy_decode(model, src, bos_id, eos_id, config.max_len, compile=config.compile)
    return NBest(out.tokens[:, None], out.scores[:, None], out.scores[:, None], out.finished[:, None])
