"""The paired timing harness of the copy-task benchmarks (``bench_vs_bart.py``, ``bench_vs_gpt2.py``,
``bench_vs_commit.py``): the copy task's batches, the shared command-line options, paired
back-to-back timing, the throughput and ratio summary, a training step, and the copy report.
``bench_decode.py`` shares the model-size options and :func:`symlit_dims`."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD, BOS, EOS = 0, 1, 2
TRAIN_TARGET, GREEDY_TARGET = 1.0, 1.5
Batch = tuple[Tensor, Tensor, Tensor]  # src, tgt_in, labels
Step = Callable[[Batch], object]


def model_size_args(p: argparse.ArgumentParser, vocab: int = 32) -> argparse.ArgumentParser:
    """The model-size options (``--d-model``, ``--layers``, ``--heads``, ``--ffn``, ``--vocab``) that
    :func:`symlit_dims` reads; ``vocab``: the default vocabulary size."""
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=4, help="encoder layers = decoder layers")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", "--d-ff", type=int, default=512, help="feed-forward width")
    p.add_argument("--vocab", type=int, default=vocab)
    return p


def copy_task_args(p: argparse.ArgumentParser, train_steps: int = 300, repeats: int = 3) -> argparse.ArgumentParser:
    """The options every copy-task benchmark shares (model size, batches, timing)."""
    model_size_args(p)
    p.add_argument("--max-positions", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--src-len", type=int, default=24, help="longest source; targets are one longer (EOS)")
    p.add_argument(
        "--train-steps", type=int, default=train_steps, help="paired training steps (the models learn to copy)"
    )
    p.add_argument("--decode-batches", type=int, default=20, help="held-out batches per decoding repeat")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each measurement")
    p.add_argument("--repeats", type=int, default=repeats, help="passes over the decoding batches")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    return p


def symlit_dims(a: argparse.Namespace) -> dict[str, Any]:
    """The config fields a symlit model of the benchmarks' size shares (either architecture)."""
    return {
        "vocab_size": a.vocab,
        "pad_id": PAD,
        "d_model": a.d_model,
        "n_heads": a.heads,
        "d_ff": a.ffn,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation": "gelu",
        "positions": "learned",
        "tie_embeddings": True,
    }


def hf_dims(a: argparse.Namespace) -> dict[str, Any]:
    """The Hugging Face config fields the BART and GPT-2 baselines share (vocabulary, GELU, special
    tokens, tied embeddings)."""
    return {
        "vocab_size": a.vocab,
        "activation_function": "gelu",
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        "tie_word_embeddings": True,
    }


def copy_batches(a: argparse.Namespace, n: int, generator: torch.Generator) -> list[Batch]:
    """``n`` batches of the copy task: (src, tgt_in, labels), right-padded with PAD."""
    batches = []
    rows, width = a.batch_size, a.src_len
    for _ in range(n):
        lengths = torch.randint(width // 2, width + 1, (rows, 1), generator=generator)
        tokens = torch.randint(EOS + 1, a.vocab, (rows, width), generator=generator)
        src = tokens.masked_fill(torch.arange(width) >= lengths, PAD)
        labels = torch.cat([src, torch.full((rows, 1), PAD)], dim=1)
        labels.scatter_(1, lengths, EOS)
        tgt_in = torch.cat([torch.full((rows, 1), BOS), labels[:, :-1]], dim=1).masked_fill(labels == PAD, PAD)
        batches.append((src, tgt_in, labels))
    return batches


def paired_times(steps: dict[str, Step], batches: list[Batch], warmup: int, repeats: int = 1) -> dict[str, list[float]]:
    """Seconds per batch for each step function, run back to back on every batch (order alternating)."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    i = 0
    for _ in range(repeats):
        for j, batch in enumerate(batches):
            order = names if i % 2 == 0 else names[::-1]
            for name in order:
                start = time.perf_counter()
                steps[name](batch)
                if j >= warmup:
                    times[name].append(time.perf_counter() - start)
            i += 1
    return times


def summarize(
    times: dict[str, list[float]], batch_size: int, name: str = "symlit", baseline: str = "BART"
) -> tuple[dict[str, float], tuple[float, float, float]]:
    """Samples/s of symlit's ``name`` and BART's ``baseline`` (from the median times) and the quartiles
    of the baseline's time over symlit's."""
    throughput = {
        "symlit": batch_size / statistics.median(times[name]),
        "BART": batch_size / statistics.median(times[baseline]),
    }
    ratios = [b / s for s, b in zip(times[name], times[baseline], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return throughput, (q1, median, q3)


def train_step(model: nn.Module, logits_fn: Callable[[Batch], Tensor]) -> Step:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 100))

    def step(batch: Batch) -> None:
        logits = logits_fn(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), batch[2].flatten(), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()

    return step


def copy_report(outputs: list[Tensor], batches: list[Batch]) -> tuple[float, float]:
    """Exact-match accuracy (up to and including EOS) and mean generated length, in tokens."""
    correct, lengths = [], []
    for tokens, (_, _, labels) in zip(outputs, batches, strict=True):
        for row, want in zip(tokens.tolist(), labels.tolist(), strict=True):
            got = row[: row.index(EOS) + 1] if EOS in row else row
            lengths.append(len(got))
            correct.append(got == want[: want.index(EOS) + 1])
    return sum(correct) / len(correct), sum(lengths) / len(lengths)
