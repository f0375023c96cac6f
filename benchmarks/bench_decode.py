"""Benchmark: decoding with the KV cache against recomputing the whole prefix at every step.

Prints sequences/s for greedy and beam search (default beam 10) with and without the cache, on
the same model and batches, at a fixed target length (EOS is made impossible, so every
hypothesis runs to ``--tgt-len``), and the speed-up. Target: >= 3x at length >= 64.

    python benchmarks/bench_decode.py                       # workshop_bart size, length 64
    python benchmarks/bench_decode.py --tgt-len 128 --beam-size 5 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import BOS, model_size_args, symlit_dims

from symlit.evaluation.decoding import beam_search, greedy_decode
from symlit.models.seq2seq import Seq2SeqTransformer, TransformerConfig

NO_EOS = -1  # eos_id=-1 never matches a token: fixed-length hypotheses


def timed(fn, repeats: int) -> float:
    """Best-of-``repeats`` wall time of ``fn()`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_size_args(parser, vocab=64)
    parser.add_argument("--src-len", type=int, default=32)
    parser.add_argument("--tgt-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per greedy batch")
    parser.add_argument("--beam-inputs", type=int, default=8, help="inputs per beam-search batch")
    parser.add_argument("--beam-size", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", type=float, default=3.0, help="required speed-up of the cache")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = TransformerConfig(
        **symlit_dims(args),
        n_encoder_layers=args.layers,
        n_decoder_layers=args.layers,
        max_positions=max(args.src_len, args.tgt_len) + 1,
    )
    model = Seq2SeqTransformer(cfg).to(args.device).eval()
    src = torch.randint(3, args.vocab, (args.batch_size, args.src_len), device=args.device)
    beam_src = src[: args.beam_inputs]
    print(
        f"model d_model={args.d_model} layers={args.layers}+{args.layers} heads={args.heads} d_ff={args.ffn} "
        f"vocab={args.vocab} ({model.num_parameters() / 1e6:.2f}M params); source {args.src_len}, target "
        f"{args.tgt_len} tokens; {torch.get_num_threads()} threads on {args.device}"
    )

    cases = {
        "greedy": (
            args.batch_size,
            lambda cache: greedy_decode(model, src, BOS, NO_EOS, args.tgt_len, use_cache=cache),
        ),
        f"beam{args.beam_size}": (
            args.beam_inputs,
            lambda cache: beam_search(model, beam_src, BOS, NO_EOS, args.tgt_len, args.beam_size, use_cache=cache),
        ),
    }
    print(f"{'decoding':<10} {'inputs':>6} {'cached seq/s':>13} {'recompute seq/s':>16} {'speed-up':>9}")
    ok = True
    for name, (n, run) in cases.items():
        with torch.inference_mode():
            cached = timed(lambda: run(True), args.repeats)
            full = timed(lambda: run(False), args.repeats)
        speedup = full / cached
        ok &= speedup >= args.target
        print(f"{name:<10} {n:>6} {n / cached:>13.1f} {n / full:>16.1f} {speedup:>8.2f}x")
    print(f"{'PASS' if ok else 'FAIL'}: KV cache speed-up >= {args.target}x at target length {args.tgt_len}")


if __name__ == "__main__":
    main()
