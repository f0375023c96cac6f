"""Encoder-decoder throughput of this checkout against another symlit source tree, paired in one run.

Guards against slowdowns from refactoring: both versions of ``Seq2SeqTransformer`` are built at
the workshop BART size of ``bench_vs_bart.py`` with the same weights (the old state dict is loaded
into the new model), fed the same copy-task batches back to back, and timed for training steps and
eager greedy decoding (``greedy_decode`` of each version). The ratio is old time over new time:
above 1.0x the new code is faster.

The other tree is imported as a renamed package, so give it a plain source checkout, e.g.::

    git worktree add /tmp/symlit-old fd0d41d   # or: git archive fd0d41d | tar -x -C /tmp/symlit-old
    python benchmarks/bench_vs_commit.py /tmp/symlit-old [--threads 2 --train-steps 100]
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import BOS, EOS, copy_batches, copy_task_args, paired_times, summarize, train_step
from bench_vs_bart import build_models

from symlit.evaluation.decoding import greedy_decode


def import_renamed(tree: Path, name: str = "symlit_old"):
    """Import ``tree/symlit`` as package ``name`` (its ``symlit.`` imports rewritten); returns its
    encoder-decoder module and its decoding module, in either source layout."""
    target = Path(tempfile.mkdtemp()) / name
    shutil.copytree(tree / "symlit", target)
    for path in target.rglob("*.py"):
        text = path.read_text()
        path.write_text(text.replace("from symlit.", f"from {name}.").replace("import symlit.", f"import {name}."))
    sys.path.insert(0, str(target.parent))
    if (target / "models").is_dir():  # the package layout (symlit.models, symlit.evaluation)
        return importlib.import_module(f"{name}.models.seq2seq"), importlib.import_module(f"{name}.evaluation.decoding")
    return importlib.import_module(f"{name}.model"), importlib.import_module(f"{name}.decoding")  # the flat layout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("old_tree", type=Path, help="a symlit source checkout (holding symlit/)")
    a = copy_task_args(p, train_steps=100, repeats=2).parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    old_model, old_decoding = import_renamed(a.old_tree)
    new, _ = build_models(a)
    old = old_model.Seq2SeqTransformer(
        old_model.TransformerConfig(
            **{k: getattr(new.cfg, k) for k in old_model.TransformerConfig.__dataclass_fields__}
        )
    )
    old.load_state_dict(new.state_dict())  # same weights: the parameter names did not change
    generator = torch.Generator().manual_seed(a.seed)
    train, held_out = copy_batches(a, a.train_steps, generator), copy_batches(a, a.decode_batches, generator)
    times = paired_times(
        {"new": train_step(new, lambda b: new(b[0], b[1])), "old": train_step(old, lambda b: old(b[0], b[1]))},
        train,
        a.warmup,
    )
    rows = [("train", *summarize(times, a.batch_size, "new", "old"))]
    new.eval()
    old.eval()
    length = a.src_len + 1
    with torch.inference_mode():
        times = paired_times(
            {
                "new": lambda b: greedy_decode(new, b[0], BOS, EOS, length),
                "old": lambda b: old_decoding.greedy_decode(old, b[0], BOS, EOS, length),
            },
            held_out,
            a.warmup,
            a.repeats,
        )
        rows.append(("greedy", *summarize(times, a.batch_size, "new", "old")))
        times = paired_times(
            {
                "new": lambda b: greedy_decode(new, b[0], BOS, -1, length),
                "old": lambda b: old_decoding.greedy_decode(old, b[0], BOS, -1, length),
            },
            held_out,
            a.warmup,
            a.repeats,
        )
        rows.append(("greedy, fixed length", *summarize(times, a.batch_size, "new", "old")))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; old tree {a.old_tree}")
    print(f"{'measurement':<22}{'new /s':>9}{'old /s':>9}{'old/new time':>14}{'quartiles':>16}")
    for kind, throughput, (q1, median, q3) in rows:
        print(
            f"{kind:<22}{throughput['symlit']:>9.1f}{throughput['BART']:>9.1f}{median:>13.2f}x"
            f"{f'[{q1:.2f}, {q3:.2f}]':>16}"
        )


if __name__ == "__main__":
    main()
