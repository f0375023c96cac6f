"""Decoding: beam search against greedy and against exhaustive search, sampling, row dropping."""

from __future__ import annotations

import itertools
import os
import shutil

import pytest
import torch
from conftest import tiny_config

from symlit.evaluation.decoding import DecodeConfig, Decoded, beam_search, decode, greedy_decode, sample_decode
from symlit.models.seq2seq import Seq2SeqTransformer

PAD, BOS, EOS = 0, 1, 2


class EosBiased(Seq2SeqTransformer):
    """A random real model whose EOS logit grows with the position (at a source-dependent pace),
    so hypotheses end at varied lengths."""

    def __init__(self, vocab_size: int = 20, eos_bias: float = 0.0, seed: int = 0) -> None:
        torch.manual_seed(seed)
        super().__init__(tiny_config(vocab_size=vocab_size, n_encoder_layers=1))
        self.eos_bias = eos_bias
        self.eval()

    def _bias(self, logits, start, pace):
        position = torch.arange(start, start + logits.shape[1], dtype=torch.float32, device=logits.device)
        logits[..., EOS] += self.eos_bias - 3.0 + pace * position
        return logits

    def _pace(self, src):  # (B, 1): differs between sources
        return 0.5 + self.embed(src[:, :1]).abs().mean(-1) * 4

    def forward(self, src, tgt_in):
        return self._bias(super().forward(src, tgt_in).clone(), 0, self._pace(src))

    def prefill(self, src, max_len, static=False, compile=False):
        cache = super().prefill(src, max_len, static, compile)
        cache.rows["pace"] = self._pace(src)  # per-row state: follows beams and dropped rows
        return cache

    def step(self, tokens, cache):
        start = cache.length
        return self._bias(super().step(tokens, cache).clone(), start, cache.rows["pace"])


def sources(batch: int = 6, vocab: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (batch, 7), generator=g)
    src[1, 4:] = PAD
    return src


def sequence_log_prob(model: Seq2SeqTransformer, src: torch.Tensor, seq: list[int]) -> float:
    """Log-probability of ``seq`` (ending with EOS) by teacher forcing, PAD and BOS excluded as in decoding."""
    tgt_in = torch.tensor([[BOS, *seq[:-1]]])
    with torch.no_grad():
        logits = model(src, tgt_in).float()
    logits[..., [PAD, BOS]] = float("-inf")
    log_probs = torch.log_softmax(logits, -1)[0]
    return float(sum(log_probs[t, tok] for t, tok in enumerate(seq)))


def model_with_mixed_endings(seed: int, max_len: int) -> tuple[EosBiased, torch.Tensor, Decoded]:
    """The random model of ``seed`` with the smallest EOS bias (on a 0.25 grid) under which greedy decoding
    of ``sources(seed=seed)`` ends some rows and not others within ``max_len`` tokens."""
    src = sources(seed=seed)
    for eos_bias in torch.arange(-3.0, 3.01, 0.25).tolist():
        model = EosBiased(seed=seed, eos_bias=eos_bias)
        greedy = greedy_decode(model, src, BOS, EOS, max_len=max_len)
        if greedy.finished.any() and not greedy.finished.all():
            return model, src, greedy
    raise AssertionError(f"seed {seed}: no EOS bias in [-3, 3] mixes ended and unended rows")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("length_penalty", "early_stopping"), [(1.0, True), (0.6, True), (0.0, True), (0.0, False)])
def test_beam_size_one_equals_greedy(seed, length_penalty, early_stopping):
    model, src, greedy = model_with_mixed_endings(seed, max_len=6)
    beam = beam_search(
        model, src, BOS, EOS, max_len=6, beam_size=1, length_penalty=length_penalty, early_stopping=early_stopping
    )
    assert torch.equal(beam.tokens[:, 0], greedy.tokens)
    assert torch.equal(beam.finished[:, 0], greedy.finished)
    torch.testing.assert_close(beam.log_probs[:, 0], greedy.scores)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_finds_the_exhaustive_top_k(length_penalty):
    """Vocabulary {3, 4, 5, EOS}, at most 3 tokens: 13 complete hypotheses, all scored by teacher forcing.

    A beam of 40 holds every prefix and ranks every extension (at most 9 x 4 = 36 per step) within its
    first 40, so beam search must return exactly the exhaustive ranking.
    """
    model = EosBiased(vocab_size=6, eos_bias=0.5, seed=3)
    src = sources(batch=3, vocab=6, seed=3)
    content = [3, 4, 5]
    max_len = 3
    out = beam_search(
        model, src, BOS, EOS, max_len=max_len, beam_size=40, length_penalty=length_penalty, early_stopping=False
    )
    for row in range(src.shape[0]):
        scored = []
        for n in range(max_len):
            for body in itertools.product(content, repeat=n):
                seq = [*body, EOS]
                scored.append((sequence_log_prob(model, src[row : row + 1], seq) / len(seq) ** length_penalty, seq))
        scored.sort(key=lambda x: -x[0])
        found = [
            [t for t in out.tokens[row, i].tolist() if t != PAD]
            for i in range(out.tokens.shape[1])
            if out.finished[row, i]
        ]
        assert found == [seq for _, seq in scored]
        torch.testing.assert_close(
            out.scores[row, : len(scored)], torch.tensor([s for s, _ in scored]), rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize("early_stopping", [True, False])
def test_nbest_lists_are_sorted_and_finished_first(early_stopping):
    model = EosBiased(seed=5)
    out = beam_search(model, sources(seed=5), BOS, EOS, max_len=10, beam_size=5, early_stopping=early_stopping)
    for row in range(out.scores.shape[0]):
        finished = out.finished[row].tolist()
        assert finished == sorted(finished, reverse=True)
        done = out.scores[row][out.finished[row]]
        assert torch.all(done[:-1] >= done[1:])
        for i in range(out.tokens.shape[1]):
            tokens = out.tokens[row, i].tolist()
            assert (EOS in tokens) == finished[i]
            assert PAD not in tokens[: tokens.index(EOS)] if EOS in tokens else True


def test_beam_with_cache_equals_recomputation():
    model = EosBiased(seed=6)
    src = sources(seed=6)
    cached = beam_search(model, src, BOS, EOS, max_len=12, beam_size=4, use_cache=True)
    full = beam_search(model, src, BOS, EOS, max_len=12, beam_size=4, use_cache=False)
    assert torch.equal(cached.tokens, full.tokens)
    torch.testing.assert_close(cached.scores, full.scores)


def test_dropping_finished_rows_changes_nothing():
    """Decoding a batch (ended rows ride along until a quarter of the batch has ended, then leave it)
    equals decoding each input alone: same tokens, PAD after EOS, same scores."""
    model = EosBiased(seed=7)
    src = sources(seed=7)
    batch_greedy = greedy_decode(model, src, BOS, EOS, max_len=12)
    assert len(set(batch_greedy.tokens.ne(PAD).sum(1).tolist())) > 2  # rows end at several steps
    batch_beam = beam_search(model, src, BOS, EOS, max_len=12, beam_size=3)
    for row in range(src.shape[0]):
        alone = greedy_decode(model, src[row : row + 1], BOS, EOS, max_len=12)
        n = alone.tokens.shape[1]
        assert batch_greedy.tokens[row, :n].tolist() == alone.tokens[0].tolist()
        assert batch_greedy.tokens[row, n:].eq(PAD).all()
        assert batch_greedy.finished[row] == alone.finished[0]
        torch.testing.assert_close(batch_greedy.scores[row], alone.scores[0])
        alone_beam = beam_search(model, src[row : row + 1], BOS, EOS, max_len=12, beam_size=3)
        n = alone_beam.tokens.shape[2]
        assert batch_beam.tokens[row, :, :n].tolist() == alone_beam.tokens[0].tolist()


@pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "g++")) is None, reason="torch.compile on CPU needs a C++ compiler"
)
def test_compiled_decoding_returns_the_eager_tokens():
    """Decoder steps through torch.compile (a static cache: every step attends over the whole
    buffer under a mask) give eager decoding's tokens, also when rows leave the batch (greedy)
    and beams are reordered (beam search)."""
    from torch._dynamo.utils import counters  # private: imported here so a change breaks only this test

    model = EosBiased(seed=7)
    src = sources(seed=7)
    eager = greedy_decode(model, src, BOS, EOS, max_len=12)
    assert len(set(eager.tokens.ne(PAD).sum(1).tolist())) > 2  # rows end at several steps
    counters.clear()
    compiled = greedy_decode(model, src, BOS, EOS, max_len=12, compile=True)
    assert counters["stats"]["unique_graphs"] >= 1  # the steps did go through the compiler
    assert torch.equal(compiled.tokens, eager.tokens)
    assert torch.equal(compiled.finished, eager.finished)
    torch.testing.assert_close(compiled.scores, eager.scores)
    eager_beam = beam_search(model, src, BOS, EOS, max_len=12, beam_size=3)
    compiled_beam = decode(model, src, BOS, EOS, DecodeConfig(strategy="beam", beam_size=3, max_len=12, compile=True))
    assert torch.equal(compiled_beam.tokens, eager_beam.tokens)
    torch.testing.assert_close(compiled_beam.scores, eager_beam.scores)


def test_max_len_guard():
    model = EosBiased(eos_bias=-50.0)  # never ends
    for out in (
        greedy_decode(model, sources(), BOS, EOS, max_len=5),
        beam_search(model, sources(), BOS, EOS, max_len=5, beam_size=3).best(),
    ):
        assert out.tokens.shape[1] == 5 and not out.finished.any()


def test_sampling_is_seeded_and_cold_sampling_is_greedy():
    model = EosBiased(seed=8)
    src = sources(seed=8)
    a = sample_decode(model, src, BOS, EOS, max_len=10, num_samples=4, temperature=1.0, seed=1)
    b = sample_decode(model, src, BOS, EOS, max_len=10, num_samples=4, temperature=1.0, seed=1)
    assert torch.equal(a.tokens, b.tokens) and a.tokens.shape[:2] == (src.shape[0], 4)
    greedy = greedy_decode(model, src, BOS, EOS, max_len=10)
    cold = sample_decode(model, src, BOS, EOS, max_len=10, num_samples=2, temperature=1e-4)
    for i in range(2):
        assert cold.tokens[:, i, : greedy.tokens.shape[1]].tolist() == greedy.tokens.tolist()
    top1 = sample_decode(model, src, BOS, EOS, max_len=10, num_samples=2, top_k=1, seed=3)
    assert top1.tokens[:, 0, : greedy.tokens.shape[1]].tolist() == greedy.tokens.tolist()


def test_decode_dispatch_and_config_errors():
    model = EosBiased(seed=9)
    src = sources(seed=9)
    out = decode(model, src, BOS, EOS, DecodeConfig(strategy="beam", beam_size=3, max_len=8))
    assert out.tokens.shape[:2] == (src.shape[0], 3)
    with pytest.raises(ValueError, match="decode.strategy"):
        DecodeConfig(strategy="nucleus")
    with pytest.raises(ValueError, match="decode.beam_size"):
        DecodeConfig(beam_size=0)
    with pytest.raises(ValueError, match="decode.max_len"):
        decode(model, src, BOS, EOS, DecodeConfig())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_decoding_matches_cpu():
    model = EosBiased(seed=10)
    src = sources(seed=10)
    cpu = beam_search(model, src, BOS, EOS, max_len=12, beam_size=4)
    gpu = beam_search(model.cuda(), src.cuda(), BOS, EOS, max_len=12, beam_size=4)
    assert torch.equal(cpu.tokens, gpu.tokens.cpu())
    torch.testing.assert_close(cpu.scores, gpu.scores.cpu(), rtol=1e-4, atol=1e-4)
