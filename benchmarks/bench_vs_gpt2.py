"""Throughput of symlit's decoder-only CausalTransformer against Hugging Face GPT-2, next to the BART rows.

One run measures both comparisons on the copy task of ``bench_vs_bart.py`` (same batches, same
paired timing, same thread count):

* the BART rows: ``bench_vs_bart.py``'s training and eager greedy rows (encoder-decoder, workshop
  BART size);
* the GPT-2 rows: ``symlit.models.causal.CausalTransformer`` against ``GPT2LMHeadModel`` at the same size
  and vocabulary (``--gpt-layers`` layers of d_model ``--d-model``, ``--heads`` heads, FFN
  ``--ffn``, exact GELU, learned positions, tied embeddings, no dropout). Both read ``source, BOS,
  target``: symlit takes right-padded sources (it skips the padding itself), GPT-2 takes
  left-padded ones with an attention mask and position ids counted over real tokens (what
  ``generate`` does), so both do the same work. **train**: forward, cross-entropy on the target
  positions, backward, AdamW. **greedy**: ``greedy_decode`` against ``generate(num_beams=1,
  do_sample=False)``, eager, each stopping at its own EOS.

Ratios are GPT-2's (BART's) median time over symlit's, with quartiles; targets: train >= 1.0x,
eager greedy >= 1.5x. Needs the ``bench`` extra (transformers).

``--kernel-share`` then profiles one more pass of greedy decoding of each decoder-only model
(``torch.profiler``) and prints how much of its time is spent in the math kernels both models
share (matrix products, attention, GELU, layer norm, softmax, embedding lookups): the rest is
per-operation overhead (Python, dispatch, small tensor ops), the only part an eager decoder can
remove without doing less arithmetic.

Run from the repository root::

    python benchmarks/bench_vs_gpt2.py [--batch-size 64 --threads 2 --train-steps 300 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from torch import Tensor
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).parent))
import _timing as timing
from _timing import BOS, EOS, GREEDY_TARGET, PAD, TRAIN_TARGET, Batch
from bench_vs_bart import bart_generate, build_models, symlit_generate

from symlit.models.causal import CausalConfig, CausalTransformer


def parse_args() -> argparse.Namespace:
    p = timing.copy_task_args(argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]))
    p.add_argument("--gpt-layers", type=int, default=4, help="decoder-only layers (symlit and GPT-2)")
    p.add_argument("--skip-bart", action="store_true", help="only the GPT-2 rows")
    p.add_argument("--kernel-share", action="store_true", help="also profile greedy decoding (see the docstring)")
    return p.parse_args()


MATH_KERNELS = (
    "aten::addmm",
    "mkldnn::_linear_pointwise",  # symlit.models.linear.Linear's CPU inference path
    "aten::mm",
    "aten::bmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::gelu",
    "aten::native_layer_norm",
    "aten::_softmax",
    "aten::_log_softmax",
    "aten::index_select",
    "aten::embedding",
)


def kernel_share(decoders: dict[str, Callable[[Tensor], object]], held_out: list[Batch]) -> None:
    """Per decoded batch: wall-clock time, and self time of :data:`MATH_KERNELS` under the profiler."""
    from torch.profiler import ProfilerActivity, profile

    print("\ngreedy decoding, per batch: time unprofiled, math kernels (profiled), the rest")
    with torch.inference_mode():
        for name, decode in decoders.items():
            start = time.perf_counter()
            for batch in held_out:
                decode(batch[0])
            wall = (time.perf_counter() - start) / len(held_out)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for batch in held_out:
                    decode(batch[0])
            kernels = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATH_KERNELS)
            kernels /= 1e6 * len(held_out)
            print(
                f"  {name:<7} {wall * 1e3:7.1f} ms, kernels {kernels * 1e3:6.1f} ms ({kernels / wall:.0%}), "
                f"the rest {max(wall - kernels, 0) * 1e3:6.1f} ms"
            )


def build_decoder_only(a: argparse.Namespace) -> tuple[CausalTransformer, GPT2LMHeadModel]:
    positions = 2 * a.src_len + 2  # source, BOS, target + EOS
    symlit = CausalTransformer(
        CausalConfig(**timing.symlit_dims(a), n_layers=a.gpt_layers, norm_first=True, max_positions=positions)
    )
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            **timing.hf_dims(a),
            n_positions=positions,
            n_embd=a.d_model,
            n_layer=a.gpt_layers,
            n_head=a.heads,
            n_inner=a.ffn,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    return symlit, gpt2


def left_padded(src: Tensor) -> Tensor:
    """The same sources with their padding moved to the left (what GPT-2's ``generate`` expects)."""
    order = torch.argsort((src != PAD).int(), dim=1, stable=True)  # padding first, tokens in order
    return src.gather(1, order)


def gpt2_inputs(src: Tensor, tgt_in: Tensor) -> dict[str, Tensor]:
    ids = torch.cat([left_padded(src), tgt_in], dim=1)
    mask = torch.cat([left_padded(src) != PAD, torch.ones_like(tgt_in, dtype=torch.bool)], dim=1)
    return {"input_ids": ids, "attention_mask": mask.long(), "position_ids": (mask.long().cumsum(1) - 1).clamp(min=0)}


def gpt2_generate(model: GPT2LMHeadModel, src: Tensor, length: int) -> Tensor:
    prompt = torch.cat([left_padded(src), torch.full((src.shape[0], 1), BOS)], dim=1)
    out = model.generate(
        input_ids=prompt,
        attention_mask=(prompt != PAD).long(),
        num_beams=1,
        do_sample=False,
        max_new_tokens=length,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return out[:, prompt.shape[1] :]


Row = tuple[str, dict[str, float], tuple[float, float, float], float]


def gpt2_rows(a: argparse.Namespace, train: list[Batch], held_out: list[Batch]) -> list[Row]:
    symlit, gpt2 = build_decoder_only(a)
    print(
        f"  decoder-only: {a.gpt_layers} layers; symlit {symlit.num_parameters():,} parameters, "
        f"GPT-2 {sum(p.numel() for p in gpt2.parameters()):,}"
    )
    s = train[0][0].shape[1]  # source width: the logits of the target positions follow it
    times = timing.paired_times(
        {
            "symlit": timing.train_step(symlit, lambda b: symlit(b[0], b[1])),
            "GPT-2": timing.train_step(gpt2, lambda b: gpt2(**gpt2_inputs(b[0], b[1]), use_cache=False).logits[:, s:]),
        },
        train,
        a.warmup,
    )
    rows: list[Row] = [("GPT-2 train", *timing.summarize(times, a.batch_size, "symlit", "GPT-2"), TRAIN_TARGET)]
    length = a.src_len + 1
    symlit.eval()
    gpt2.eval()
    with torch.inference_mode():
        outputs: dict[str, list[Tensor]] = {"symlit": [], "GPT-2": []}
        times = timing.paired_times(
            {
                "symlit": lambda b: outputs["symlit"].append(symlit_generate(symlit, b[0], length, EOS)),
                "GPT-2": lambda b: outputs["GPT-2"].append(gpt2_generate(gpt2, b[0], length)),
            },
            held_out,
            a.warmup,
            a.repeats,
        )
    rows.append(("GPT-2 greedy", *timing.summarize(times, a.batch_size, "symlit", "GPT-2"), GREEDY_TARGET))
    for name, outs in outputs.items():
        accuracy, mean_len = timing.copy_report(outs[: len(held_out)], held_out)
        print(f"  {name:<7} greedy copy accuracy {accuracy:.1%}, mean output length {mean_len:.1f} tokens")
    if a.kernel_share:
        kernel_share(
            {
                "symlit": lambda src: symlit_generate(symlit, src, length, EOS),
                "GPT-2": lambda src: gpt2_generate(gpt2, src, length),
            },
            held_out,
        )
    return rows


def bart_rows(a: argparse.Namespace, train: list[Batch], held_out: list[Batch]) -> list[Row]:
    symlit, bart = build_models(a)
    times = timing.paired_times(
        {
            "symlit": timing.train_step(symlit, lambda b: symlit(b[0], b[1])),
            "BART": timing.train_step(
                bart,
                lambda b: (
                    bart(input_ids=b[0], attention_mask=b[0] != PAD, decoder_input_ids=b[1], use_cache=False).logits
                ),
            ),
        },
        train,
        a.warmup,
    )
    rows: list[Row] = [("BART train", *timing.summarize(times, a.batch_size), TRAIN_TARGET)]
    length = a.src_len + 1
    symlit.eval()
    bart.eval()
    with torch.inference_mode():
        times = timing.paired_times(
            {
                "symlit": lambda b: symlit_generate(symlit, b[0], length, EOS),
                "BART": lambda b: bart_generate(bart, b[0], length, fixed=False),
            },
            held_out,
            a.warmup,
            a.repeats,
        )
    rows.append(("BART greedy", *timing.summarize(times, a.batch_size), GREEDY_TARGET))
    return rows


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    generator = torch.Generator().manual_seed(a.seed)
    train = timing.copy_batches(a, a.train_steps, generator)
    held_out = timing.copy_batches(a, a.decode_batches, generator)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    print(
        f"d_model {a.d_model}, {a.heads} heads, FFN {a.ffn}, vocab {a.vocab}; batch {a.batch_size}, copy task, "
        f"source length {a.src_len // 2}..{a.src_len}"
    )
    rows = [] if a.skip_bart else bart_rows(a, train, held_out)
    rows += gpt2_rows(a, train, held_out)
    print("(ratio: the other model's median time over symlit's; 'other' is BART or GPT-2 as the row says)")
    print(f"\n{'measurement':<16}{'symlit /s':>11}{'other /s':>10}{'ratio':>8}{'quartiles':>16}")
    for kind, throughput, (q1, median, q3), _ in rows:
        print(
            f"{kind:<16}{throughput['symlit']:>11.1f}{throughput['BART']:>10.1f}{median:>7.2f}x"
            f"{f'[{q1:.2f}, {q3:.2f}]':>16}"
        )
    print()
    for kind, _, (_, median, _), target in rows:
        verdict = "PASS" if median >= target else "FAIL"
        print(f"{verdict}: {kind} ratio {median:.2f}x (target >= {target:.1f}x)")


if __name__ == "__main__":
    main()
