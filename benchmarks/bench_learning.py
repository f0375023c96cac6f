"""Learning efficiency of symlit's decoder-only CausalTransformer against Hugging Face GPT-2: steps to 99 %.

Both models are built as in ``bench_vs_gpt2.py`` (same size, vocabulary, exact GELU, learned
positions, tied embeddings, no dropout; GPT-2 from a ``GPT2Config``, randomly initialised) and
trained on the same batches with the same optimiser: AdamW over symlit's parameter groups
(:func:`symlit.training.module.param_groups`), a linear warm-up, then a constant learning rate. Every
``--eval-every`` steps each model is scored on a held-out set; a run stops at the first evaluation
with sequence accuracy >= ``--target`` and reports that step (``>max`` when it never gets there).

Sequence accuracy is greedy decoding's exact match up to and including EOS. It is computed with one
teacher-forced pass: a causal model's greedy output equals the target exactly when the argmax at
every target position (EOS included) is the target token, so no decoding loop is needed.

Tasks (``--tasks``):

* ``copy``: random sequences of ``--copy-len // 2 .. --copy-len`` tokens over a vocabulary of
  ``--vocab`` (the batches of the copy-task benchmarks); held out: fresh random sequences.
* ``addition``: ``a + b`` with ``a, b`` in ``0 .. 10**--digits - 1``, digits reversed (least
  significant first) in the source and the target; held out: ``--held-out`` pairs never trained on.

Models (``--models``): ``gpt2``; ``symlit`` (the library's initialisation); ``symlit:from-gpt2``,
symlit started from GPT-2's own initial weights (the two then compute the same function, so a
difference in learning would be the code's); and symlit re-initialised after it is built, by a
recipe, ``symlit:<recipe>`` (:data:`RECIPES`: ``default`` draws the library's initialisation
again, ``gpt2`` is GPT-2's), or by factors that change the default recipe,
``symlit:lin=normal,resid=1``:

* ``lin``: linear weights ``xavier`` (uniform) or ``normal`` (std 0.02); biases zero;
* ``resid``: ``1`` scales the residual output projections (attention output, second feed-forward
  linear) by ``1/sqrt(2 * layers)``;
* ``emb``: std of a token's contribution to the residual stream (the embedding weight times the
  model's embedding scale);
* ``pos``: std of the learned positions;
* ``escale``: ``1`` keeps the embedding multiplier ``sqrt(d_model)``, ``0`` sets it to 1 (GPT-2:
  unscaled; a benchmark-only change, the forward pass then differs from symlit's).

Prints one line per run, then per task and model the median and quartiles of the steps over the
seeds, and the ratio of symlit's medians to GPT-2's (target <= 1.0x). ``--out`` appends one JSON
line per run. Needs the ``bench`` extra (transformers). Run from the repository root::

    taskset -c 1 python benchmarks/bench_learning.py --threads 1 --seeds 0 1 2 3 4 --models gpt2 symlit
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).parent))
import _timing as timing
from _timing import BOS, EOS, PAD, Batch
from bench_vs_gpt2 import build_decoder_only, gpt2_inputs

from symlit.models.causal import CausalTransformer
from symlit.training.module import param_groups

DIGIT0 = EOS + 1  # tokens DIGIT0 .. DIGIT0 + 9 are the digits, then PLUS
PLUS = DIGIT0 + 10

# initialisation recipes, in the factors of the module docstring
RECIPES: dict[str, dict[str, float | str]] = {
    "default": {"lin": "xavier", "resid": 0, "emb": 1.0, "pos": 1.0, "escale": 1},
    "gpt2": {"lin": "normal", "resid": 1, "emb": 0.02, "pos": 0.02, "escale": 0},
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tasks", nargs="+", default=["copy", "addition"], choices=["copy", "addition"])
    p.add_argument("--models", nargs="+", default=["gpt2", "symlit"], help="gpt2, symlit, symlit:<recipe or factors>")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--gpt-layers", type=int, default=4, help="decoder-only layers (symlit and GPT-2)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--vocab", type=int, default=32, help="copy task vocabulary (special tokens included)")
    p.add_argument("--copy-len", type=int, default=8, help="longest copy source")
    p.add_argument("--digits", type=int, default=2, help="longest addition operand")
    p.add_argument("--held-out", type=int, default=512, help="held-out examples")
    p.add_argument("--target", type=float, default=0.99, help="held-out sequence accuracy to reach")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--betas", type=float, nargs=2, default=[0.9, 0.98])
    p.add_argument("--eps", type=float, default=1e-9)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps, then a constant learning rate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="append one JSON line per run")
    p.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        help="train nothing: summarise these --out files (runs of --tasks, --models, --seeds)",
    )
    return p.parse_args()


# ---------------------------------------------------------------- tasks


def _right_padded(rows: list[list[int]], width: int) -> Tensor:
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


def _digits(n: int) -> list[int]:
    return [DIGIT0 + int(c) for c in reversed(str(n))]  # least significant first


def addition_batch(pairs: list[tuple[int, int]], digits: int) -> Batch:
    src = _right_padded([_digits(a) + [PLUS] + _digits(b) for a, b in pairs], 2 * digits + 1)
    labels = _right_padded([_digits(a + b) + [EOS] for a, b in pairs], digits + 2)
    tgt_in = torch.cat([torch.full((len(pairs), 1), BOS), labels[:, :-1]], dim=1).masked_fill(labels == PAD, PAD)
    return src, tgt_in, labels


class Task:
    """Training batches drawn from a seeded generator, and a fixed held-out batch."""

    def __init__(self, name: str, a: argparse.Namespace, seed: int) -> None:
        self.name, self.a = name, a
        self.generator = torch.Generator().manual_seed(seed)
        held = torch.Generator().manual_seed(10_000 + seed)
        if name == "copy":
            self.dims = argparse.Namespace(batch_size=a.held_out, src_len=a.copy_len, vocab=a.vocab)
            self.held_out = timing.copy_batches(self.dims, 1, held)[0]
            self.dims.batch_size = a.batch_size
            self.vocab, self.src_len = a.vocab, a.copy_len
        else:
            top = 10**a.digits
            self.excluded: set[tuple[int, int]] = set()
            while len(self.excluded) < a.held_out:
                x, y = torch.randint(top, (2,), generator=held).tolist()
                self.excluded.add((x, y))
            self.held_out = addition_batch(sorted(self.excluded), a.digits)
            self.vocab, self.src_len = PLUS + 1, 2 * a.digits + 1

    def batch(self) -> Batch:
        if self.name == "copy":
            return timing.copy_batches(self.dims, 1, self.generator)[0]
        top = 10**self.a.digits
        pairs: list[tuple[int, int]] = []
        while len(pairs) < self.a.batch_size:
            x, y = torch.randint(top, (2,), generator=self.generator).tolist()
            if (x, y) not in self.excluded:
                pairs.append((x, y))
        return addition_batch(pairs, self.a.digits)


# ---------------------------------------------------------------- models


def reinit(model: CausalTransformer, factors: dict[str, float | str]) -> None:
    """Re-initialise a symlit model by the factors of the module docstring."""
    resid_scale = 1 / math.sqrt(2 * len(model.layers)) if factors["resid"] else 1.0
    residual = {id(layer.attn.out_proj) for layer in model.layers} | {id(layer.ff[3]) for layer in model.layers}
    for module in model.modules():
        if isinstance(module, nn.Linear) and module is not model.lm_head:
            if factors["lin"] == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.normal_(module.weight, std=0.02)
            if id(module) in residual:
                with torch.no_grad():
                    module.weight.mul_(resid_scale)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    if not factors["escale"]:
        model.embed_scale = 1.0
    with torch.no_grad():
        nn.init.normal_(model.embed.weight, std=float(factors["emb"]) / model.embed_scale)
        model.embed.weight[model.cfg.pad_id].zero_()
        nn.init.normal_(model.pos.weight, std=float(factors["pos"]))


def copy_gpt2_weights(model: CausalTransformer, gpt2: GPT2LMHeadModel) -> None:
    """Start symlit from GPT-2's initial weights (embedding multiplier 1): the two then compute the same
    function, so any difference in learning is the code's, not the initialisation's."""
    g = gpt2.transformer
    model.embed_scale = 1.0
    pairs = [(model.embed.weight, g.wte.weight), (model.pos.weight, g.wpe.weight)]
    pairs += [(p, q) for p, q in zip(model.norm.parameters(), g.ln_f.parameters(), strict=True)]
    for layer, block in zip(model.layers, g.h, strict=True):
        linears = [
            (layer.attn.qkv_proj, block.attn.c_attn),
            (layer.attn.out_proj, block.attn.c_proj),
            (layer.ff[0], block.mlp.c_fc),
            (layer.ff[3], block.mlp.c_proj),
        ]
        pairs += [(mine.weight, conv.weight.T) for mine, conv in linears]  # Conv1D stores (in, out)
        pairs += [(mine.bias, conv.bias) for mine, conv in linears]
        pairs += [(p, q) for p, q in zip(layer.norm1.parameters(), block.ln_1.parameters(), strict=True)]
        pairs += [(p, q) for p, q in zip(layer.norm2.parameters(), block.ln_2.parameters(), strict=True)]
    with torch.no_grad():
        for mine, theirs in pairs:
            mine.copy_(theirs)


def parse_factors(spec: str) -> dict[str, float | str]:
    if spec in RECIPES:
        return RECIPES[spec]
    factors: dict[str, float | str] = dict(RECIPES["default"])
    for item in spec.split(","):
        key, value = item.split("=")
        if key not in factors:
            raise SystemExit(f"unknown factor {key!r} in {spec!r} (one of {', '.join(factors)})")
        factors[key] = value if key == "lin" else float(value)
    return factors


Logits = Callable[[Batch], Tensor]


def build(name: str, task: Task, a: argparse.Namespace) -> tuple[nn.Module, Logits]:
    dims = argparse.Namespace(**{**vars(a), "vocab": task.vocab, "src_len": task.src_len})
    symlit, gpt2 = build_decoder_only(dims)
    if name == "gpt2":
        return gpt2, lambda b: gpt2(**gpt2_inputs(b[0], b[1]), use_cache=False).logits[:, b[0].shape[1] :]
    if name == "symlit:from-gpt2":
        copy_gpt2_weights(symlit, gpt2)
    elif name != "symlit":
        reinit(symlit, parse_factors(name.split(":", 1)[1]))
    return symlit, lambda b: symlit(b[0], b[1])


def sequence_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Greedy exact match: every labelled position (up to EOS) is the argmax."""
    wrong = (logits.argmax(-1) != labels) & (labels != PAD)
    return (~wrong.any(1)).float().mean().item()


def steps_to_target(name: str, task_name: str, seed: int, a: argparse.Namespace) -> dict[str, object]:
    task = Task(task_name, a, seed)
    torch.manual_seed(seed)
    model, logits_fn = build(name, task, a)
    opt = torch.optim.AdamW(
        param_groups(model),
        lr=a.lr,
        betas=tuple(a.betas),
        eps=a.eps,
        weight_decay=a.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / max(a.warmup, 1)))
    start, accuracy, reached = time.perf_counter(), 0.0, None
    for step in range(1, a.max_steps + 1):
        model.train()
        batch = task.batch()
        loss = F.cross_entropy(logits_fn(batch).flatten(0, 1), batch[2].flatten(), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % a.eval_every == 0:
            model.eval()
            with torch.no_grad():
                accuracy = sequence_accuracy(logits_fn(task.held_out), task.held_out[2])
            if accuracy >= a.target:
                reached = step
                break
    return {
        "task": task_name,
        "model": name,
        "seed": seed,
        "steps": reached,
        "accuracy": accuracy,
        "loss": loss.item(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    if not a.summarize:
        print(
            f"torch {torch.__version__}, threads {torch.get_num_threads()}; d_model {a.d_model}, {a.gpt_layers} layers, "
            f"{a.heads} heads, FFN {a.ffn}; batch {a.batch_size}; AdamW lr {a.lr} betas {tuple(a.betas)} eps {a.eps} "
            f"wd {a.weight_decay} (matrices only), warm-up {a.warmup}; "
            f"held out {a.held_out}, target {a.target:.0%}, evaluated every {a.eval_every} steps, at most {a.max_steps}",
            flush=True,
        )
    if a.summarize:
        runs = [json.loads(line) for path in a.summarize for line in path.read_text().splitlines() if line.strip()]
        runs = [r for r in runs if r["task"] in a.tasks and r["model"] in a.models and r["seed"] in a.seeds]
    else:
        runs = train_all(a)
    summarize(runs, a)


def train_all(a: argparse.Namespace) -> list[dict[str, object]]:
    runs = []
    for task_name in a.tasks:
        for seed in a.seeds:
            for name in a.models:
                run = steps_to_target(name, task_name, seed, a)
                runs.append(run)
                print(
                    f"{task_name:<9} seed {seed:<3} {name:<40} steps {run['steps'] or f'>{a.max_steps}'!s:>6}  "
                    f"acc {run['accuracy']:.3f}  loss {run['loss']:.3f}  {run['seconds']} s",
                    flush=True,
                )
                if a.out:
                    with a.out.open("a") as f:
                        f.write(json.dumps({**run, "max_steps": a.max_steps, "args": vars(a) | {"out": str(a.out)}}))
                        f.write("\n")
    return runs


def summarize(runs: list[dict[str, object]], a: argparse.Namespace) -> None:
    """Median and quartiles of the steps per task and model; a run that never got there counts as its
    ``max_steps`` plus one evaluation interval."""

    def limit(run: dict[str, object]) -> int:
        return int(run.get("max_steps", run["args"]["max_steps"]))  # type: ignore[index]

    def steps(run: dict[str, object]) -> float:
        return float(run["steps"] or limit(run) + a.eval_every)

    def shown(run: dict[str, object]) -> str:
        return str(run["steps"] or f">{limit(run)}")

    print(f"\nsteps to {a.target:.0%} (a run that never got there counts as its step limit + {a.eval_every})")
    print(f"{'task':<9} {'model':<40} {'median':>7} {'quartiles':>15}  per seed ({' '.join(map(str, a.seeds))})")
    medians: dict[tuple[str, str], float] = {}
    for task_name in a.tasks:
        for name in a.models:
            mine = sorted((r for r in runs if r["task"] == task_name and r["model"] == name), key=lambda r: r["seed"])
            if not mine:
                continue
            q1, median, q3 = quartiles([steps(r) for r in mine])
            medians[task_name, name] = median
            by_seed = {r["seed"]: shown(r) for r in mine}
            per_seed = " ".join(by_seed.get(seed, "-") for seed in a.seeds)
            print(f"{task_name:<9} {name:<40} {median:>7.0f} {f'[{q1:.0f}, {q3:.0f}]':>15}  {per_seed}")
    print()
    for (task_name, name), median in medians.items():
        if name != "gpt2" and (task_name, "gpt2") in medians:
            ratio = median / medians[task_name, "gpt2"]
            verdict = "PASS" if ratio <= 1.0 else "FAIL"
            print(f"{verdict}: {task_name} {name} median steps {ratio:.2f}x GPT-2's (target <= 1.0x)")


if __name__ == "__main__":
    main()
