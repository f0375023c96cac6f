"""Scoring by decoding: the one place where training, ``symlit-eval`` and ``symlit-predict`` turn a
batch of sources into verified hypotheses and accuracies.

* :func:`decode_predictions`: greedy and, when the decoding config asks for it (:func:`wants_nbest`),
  n-best hypotheses (beam or sampled) as :class:`Prediction` objects;
* :func:`verify_predictions`: verdicts from the task's verifier in a :class:`VerifierPool`, plus
  *beam agreement* (how many of the top-k hypotheses the verifier accepts when the top-1 hypothesis
  stands in for the reference: a confidence signal that needs no reference answer);
* :func:`accuracies`: the accuracy metrics under their one name each (:data:`SEQ_ACC`,
  :data:`TOP1_ACC`, :func:`acc_at`), used by the LightningModule's logs and by ``eval.json``;
* :func:`decode_length_limit`: the default decoding length (``2 x target length + 8``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from symlit.data.tokenizer import Seq2SeqTokenizer
from symlit.evaluation.decoding import DecodeConfig, decode, greedy_decode
from symlit.evaluation.verifier_pool import Check, VerifierPool
from symlit.models.base import DecodingModel

Hypothesis = tuple[str | None, float]
"""Text of a hypothesis (``None`` if it never emitted EOS) and its score."""

SEQ_ACC = "seq_acc"
"""Fraction of greedy hypotheses the verifier accepts."""
TOP1_ACC = "top1_acc"
"""Fraction of inputs whose best n-best hypothesis (beam or sampled) the verifier accepts."""


def acc_at(k: int) -> str:
    """Name of the fraction of inputs with a verified hypothesis among the top ``k``."""
    return f"acc_at_{k}"


@dataclass
class Prediction:
    """Everything evaluated about one input."""

    source: str
    target: str
    bucket: str = "all"
    greedy: str | None = None
    greedy_score: float = 0.0
    greedy_verdict: str = ""
    hypotheses: list[str | None] = field(default_factory=list)  # n-best, best first (empty: greedy only)
    scores: list[float] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    agreement: int = 0  # n-best hypotheses accepted with the top-1 hypothesis as the reference
    extra: dict[str, float] = field(default_factory=dict)  # the task's extra scores of the greedy hypothesis

    @property
    def greedy_correct(self) -> bool:
        return self.greedy_verdict == "correct"

    @property
    def top1_correct(self) -> bool:
        return bool(self.verdicts) and self.verdicts[0] == "correct"

    @property
    def any_correct(self) -> bool:
        return "correct" in self.verdicts


# ---------------------------------------------------------------------------- decoding
def wants_nbest(config: DecodeConfig) -> bool:
    """Whether ``config`` asks for more than the greedy hypothesis."""
    return config.strategy == "sample" or (config.strategy == "beam" and config.beam_size > 1)


def nbest_size(config: DecodeConfig) -> int:
    """How many n-best hypotheses ``config`` asks for (the ``k`` of :func:`acc_at`)."""
    return config.num_samples if config.strategy == "sample" else config.beam_size


def decode_length_limit(target_len: int, max_positions: int) -> int:
    """The default decoding limit: twice the (longest) target's length in tokens plus 8, at most the
    model's positions. A hypothesis that has not ended by then counts as ``no_eos``."""
    return min(2 * target_len + 8, max_positions)


def _texts(tokenizer: Seq2SeqTokenizer, tokens: torch.Tensor, finished: torch.Tensor) -> list[str | None]:
    texts = tokenizer.decode_batch(tokens.tolist())
    return [t if done else None for t, done in zip(texts, finished.tolist())]


def decode_texts(
    model: DecodingModel, tokenizer: Seq2SeqTokenizer, src: torch.Tensor, config: DecodeConfig, nbest: bool
) -> tuple[list[Hypothesis], list[list[Hypothesis]] | None]:
    """Greedy hypotheses of a batch ``src`` (B, S) and, with ``nbest``, the n-best lists ``config`` asks for."""
    greedy = greedy_decode(model, src, tokenizer.bos_id, tokenizer.eos_id, config.max_len, compile=config.compile)
    greedy_out = list(zip(_texts(tokenizer, greedy.tokens, greedy.finished), greedy.scores.tolist()))
    if not nbest:
        return greedy_out, None
    out = decode(model, src, tokenizer.bos_id, tokenizer.eos_id, config)  # tokens (B, N, L), scores (B, N)
    lists = []
    for row in range(src.shape[0]):
        texts = _texts(tokenizer, out.tokens[row], out.finished[row])
        lists.append([(t, s) for t, s in zip(texts, out.scores[row].tolist()) if math.isfinite(s)])
    return greedy_out, lists


def decode_predictions(
    model: DecodingModel,
    tokenizer: Seq2SeqTokenizer,
    src: torch.Tensor,
    sources: list[str],
    targets: list[str],
    config: DecodeConfig,
    buckets: list[str] | None = None,
    nbest: bool | None = None,
) -> list[Prediction]:
    """Unverified predictions for a batch ``src`` (B, S) of ``sources`` (references ``targets``):
    the greedy hypothesis, and the n-best list when ``nbest`` (default: :func:`wants_nbest`) says so."""
    nbest = wants_nbest(config) if nbest is None else nbest
    greedy, lists = decode_texts(model, tokenizer, src, config, nbest)
    preds = []
    for row, (source, target) in enumerate(zip(sources, targets)):
        p = Prediction(source, target, buckets[row] if buckets else "all", greedy[row][0], greedy[row][1])
        if lists is not None:
            p.hypotheses, p.scores = [h for h, _ in lists[row]], [s for _, s in lists[row]]
        preds.append(p)
    return preds


# ---------------------------------------------------------------------------- verification
def verify_predictions(predictions: list[Prediction], pool: VerifierPool, agreement: bool = True) -> None:
    """Fill in verdicts, extra scores and beam agreement (each distinct check runs once)."""
    checks: dict[tuple[str, str, str | None], Check] = {}

    def want(source: str, target: str, hyp: str | None, with_scores: bool = False) -> tuple:
        key = (source, target, hyp)
        check = checks.setdefault(key, Check(source, target, hyp))
        check.with_scores |= with_scores
        return key

    plan = []
    for p in predictions:
        g = want(p.source, p.target, p.greedy, with_scores=True)
        nb = [want(p.source, p.target, h) for h in p.hypotheses]
        top = p.hypotheses[0] if p.hypotheses else None
        ag = [want(p.source, top, h) for h in p.hypotheses[1:]] if agreement and top is not None else []
        plan.append((g, nb, ag))
    keys = list(checks)
    outcomes = dict(zip(keys, pool.verify([checks[k] for k in keys])))
    for p, (g, nb, ag) in zip(predictions, plan):
        p.greedy_verdict = outcomes[g].verdict
        p.extra = outcomes[g].scores
        p.verdicts = [outcomes[k].verdict for k in nb]
        p.agreement = (1 if p.hypotheses and p.hypotheses[0] is not None else 0) + sum(
            outcomes[k].verdict == "correct" for k in ag
        )


# ---------------------------------------------------------------------------- metrics
def rate(hits: int, n: int) -> float:
    """``hits / n``, 0 for no inputs."""
    return hits / n if n else 0.0


def accuracies(preds: list[Prediction], k: int | None = None) -> dict[str, float]:
    """:data:`SEQ_ACC` of verified ``preds`` and, with the n-best size ``k``, :data:`TOP1_ACC` and ``acc_at(k)``."""
    n = len(preds)
    out = {SEQ_ACC: rate(sum(p.greedy_correct for p in preds), n)}
    if k is not None:
        out[TOP1_ACC] = rate(sum(p.top1_correct for p in preds), n)
        out[acc_at(k)] = rate(sum(p.any_correct for p in preds), n)
    return out
