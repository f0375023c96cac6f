"""Throughput of symlit's Seq2SeqTransformer against Hugging Face BART at the same size.

Both models are built at the workshop's BART size (``conf/model/workshop_bart.yaml``: d_model
128, 4+4 post-LN layers, 4 heads, FFN 512, GELU, 32 positions, tied embeddings) with the same
small vocabulary and no dropout, and fed the same random batches in one process with the same
thread count. Two numbers per model, in samples (sequences) per second:

* train: forward, token cross-entropy (padding ignored, computed the same way from the logits
  of both models), backward and an AdamW step; warmup steps excluded;
* greedy: symlit's ``greedy_decode(use_cache=True)`` against ``BartForConditionalGeneration
  .generate(num_beams=1, do_sample=False)``, both forced to emit exactly ``--tgt-len`` tokens
  per row (symlit gets an EOS id that never matches; BART gets min = max new tokens).

Throughput is the batch size over the median step time (robust to brief load spikes on a
shared machine); each measurement is repeated, interleaving the two models, and the best repeat
is kept. The ratios symlit/BART are checked against the targets of the issue (train >= 1.0x,
greedy >= 1.5x); the script prints PASS/FAIL and exits 0 either way. Needs the ``bench`` extra
(``pip install -e .[bench]``, i.e. transformers).

Run from the repository root::

    python benchmarks/bench_vs_bart.py [--batch-size 64 --steps 20 --threads 2 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import transformers
from torch import Tensor, nn
from transformers import BartConfig, BartForConditionalGeneration

from symlit.decoding import greedy_decode
from symlit.model import Seq2SeqTransformer, TransformerConfig

PAD, BOS, EOS = 0, 1, 2
TRAIN_TARGET, GREEDY_TARGET = 1.0, 1.5
Batch = tuple[Tensor, Tensor, Tensor]  # src, tgt_in, labels
LogitsFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
DecodeFn = Callable[[nn.Module, Tensor, int], Tensor]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=4, help="encoder layers = decoder layers")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32)
    p.add_argument("--max-positions", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--src-len", type=int, default=24)
    p.add_argument("--tgt-len", type=int, default=24, help="teacher-forced and generated target length")
    p.add_argument("--steps", type=int, default=20, help="timed iterations per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def build_models(a: argparse.Namespace) -> tuple[Seq2SeqTransformer, BartForConditionalGeneration]:
    symlit = Seq2SeqTransformer(TransformerConfig(
        vocab_size=a.vocab, pad_id=PAD, d_model=a.d_model, n_heads=a.heads, n_encoder_layers=a.layers,
        n_decoder_layers=a.layers, d_ff=a.ffn, dropout=0.0, attention_dropout=0.0, activation="gelu",
        norm_first=False, positions="learned", max_positions=a.max_positions, tie_embeddings=True,
    ))
    bart = BartForConditionalGeneration(BartConfig(
        vocab_size=a.vocab, d_model=a.d_model, encoder_layers=a.layers, decoder_layers=a.layers,
        encoder_attention_heads=a.heads, decoder_attention_heads=a.heads, encoder_ffn_dim=a.ffn,
        decoder_ffn_dim=a.ffn, max_position_embeddings=a.max_positions, activation_function="gelu",
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=BOS, forced_bos_token_id=None, forced_eos_token_id=None,
        tie_word_embeddings=True,
    ))
    return symlit, bart


def make_batches(a: argparse.Namespace, n: int) -> list[Batch]:
    """``n`` batches of (src, tgt_in, labels); sources and targets are right-padded to random lengths."""
    def padded(length: int) -> Tensor:
        tokens = torch.randint(EOS + 1, a.vocab, (a.batch_size, length))
        lengths = torch.randint(length // 2, length + 1, (a.batch_size, 1))
        return tokens.masked_fill(torch.arange(length) >= lengths, PAD)

    batches = []
    for _ in range(n):
        src, tgt = padded(a.src_len), padded(a.tgt_len)
        tgt_in = torch.cat([torch.full((a.batch_size, 1), BOS), tgt[:, :-1]], dim=1)
        batches.append((src, tgt_in, tgt))
    return batches


def symlit_logits(model: nn.Module, src: Tensor, tgt_in: Tensor) -> Tensor:
    return model(src, tgt_in)


def bart_logits(model: nn.Module, src: Tensor, tgt_in: Tensor) -> Tensor:
    return model(input_ids=src, attention_mask=src != PAD, decoder_input_ids=tgt_in, use_cache=False).logits


def step_throughput(step: Callable[[Tensor, Tensor, Tensor], None], batches: list[Batch], warmup: int) -> float:
    """Samples/s from the median time of the steps after ``warmup`` (robust to brief load spikes)."""
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        step(*batch)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return batches[0][0].shape[0] / statistics.median(times)


def train_throughput(model: nn.Module, logits_fn: LogitsFn, batches: list[Batch], warmup: int) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(src: Tensor, tgt_in: Tensor, labels: Tensor) -> None:
        logits = logits_fn(model, src, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step_throughput(step, batches, warmup)


def symlit_greedy(model: nn.Module, src: Tensor, length: int) -> Tensor:
    return greedy_decode(model, src, bos_id=BOS, eos_id=-1, max_len=length, use_cache=True).tokens


def bart_greedy(model: nn.Module, src: Tensor, length: int) -> Tensor:
    out = model.generate(input_ids=src, attention_mask=src != PAD, num_beams=1, do_sample=False,
                         max_new_tokens=length, min_new_tokens=length)
    return out[:, 1:]  # drop the decoder start token


def greedy_throughput(model: nn.Module, decode_fn: DecodeFn, batches: list[Batch], warmup: int, length: int) -> float:
    model.eval()

    def step(src: Tensor, _tgt_in: Tensor, _labels: Tensor) -> None:
        tokens = decode_fn(model, src, length)
        if tokens.shape != (src.shape[0], length):
            raise RuntimeError(f"{decode_fn.__name__} produced {tuple(tokens.shape)}, expected length {length}")

    with torch.inference_mode():
        return step_throughput(step, batches, warmup)


def main() -> None:
    a = parse_args()
    if a.tgt_len > a.max_positions or a.src_len > a.max_positions:
        raise SystemExit(f"--src-len/--tgt-len must be <= --max-positions={a.max_positions}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    symlit, bart = build_models(a)
    batches = make_batches(a, a.warmup + a.steps)
    n_params = {"symlit": symlit.num_parameters(), "BART": sum(p.numel() for p in bart.parameters())}
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    print(f"d_model {a.d_model}, {a.layers}+{a.layers} layers, {a.heads} heads, FFN {a.ffn}, vocab {a.vocab}; "
          f"batch {a.batch_size}, src {a.src_len}, tgt {a.tgt_len}; median of {a.steps} steps "
          f"(+{a.warmup} warmup), best of {a.repeats} repeats")
    for name, count in n_params.items():
        print(f"  {name:<7} parameters: {count:,}")

    runs = {
        "symlit": (symlit, symlit_logits, symlit_greedy),
        "BART": (bart, bart_logits, bart_greedy),
    }
    train = {name: 0.0 for name in runs}
    greedy = {name: 0.0 for name in runs}
    for _ in range(a.repeats):  # interleave the models so drift in machine load hits both
        for name, (model, logits_fn, _) in runs.items():
            train[name] = max(train[name], train_throughput(model, logits_fn, batches, a.warmup))
        for name, (model, _, decode_fn) in runs.items():
            greedy[name] = max(greedy[name], greedy_throughput(model, decode_fn, batches, a.warmup, a.tgt_len))

    print(f"\n{'model':<10}{'train samples/s':>18}{'greedy samples/s':>19}")
    for name in runs:
        print(f"{name:<10}{train[name]:>18.1f}{greedy[name]:>19.1f}")
    ratios = {"train": train["symlit"] / train["BART"], "greedy": greedy["symlit"] / greedy["BART"]}
    print(f"{'ratio':<10}{ratios['train']:>17.2f}x{ratios['greedy']:>18.2f}x   (symlit / BART)\n")
    for kind, target in (("train", TRAIN_TARGET), ("greedy", GREEDY_TARGET)):
        verdict = "PASS" if ratios[kind] >= target else "FAIL"
        print(f"{verdict}: {kind} ratio {ratios[kind]:.2f}x (target >= {target:.1f}x)")


if __name__ == "__main__":
    main()
