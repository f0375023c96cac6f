"""Acceptance matrix: every {encoder-decoder, decoder-only} x position scheme trains `addition`
under ``debug=fast_dev_run``; then a 3-step run writes a checkpoint (fast_dev_run writes none), which
``symlit-eval`` evaluates greedily and with beam-5 on 100 test problems.

In one process (the real Hydra configs, ``symlit.training.train.train`` and ``symlit.review.evaluate.run_eval``, i.e.
``symlit-train`` and ``symlit-eval`` without a process start each: on a loaded 2-core machine the
imports dominate). Usage, from the repository root with the venv active::

    SYMLIT_ROOT=/tmp/matrix python experiments/architecture_matrix.py
"""

from __future__ import annotations

import contextlib
import io
import os
import time

from hydra import compose, initialize_config_dir

from symlit.core.config import config_dir
from symlit.review.evaluate import run_eval
from symlit.training.train import train

os.environ.setdefault("WANDB_SILENT", "true")
ROOT = os.environ.get("SYMLIT_ROOT", "/tmp/symlit-matrix")
SCHEMES = ["learned", "sinusoidal", "rope", "alibi", "none", "abacus", "abacus+rope"]


def cfg(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def main() -> None:
    for model in ("small", "gpt_small"):
        for positions in SCHEMES:
            if model == "small" and positions == "none":
                continue  # NoPE is decoder-only
            start = time.perf_counter()
            run_dir = f"{ROOT}/outputs/matrix/{model}-{positions.replace('+', '-')}"
            common = [
                f"model={model}",
                f"model.positions={positions}",
                "data.task.encoding=reversed",
                f"paths.root_dir={ROOT}",
                "trainer.accelerator=cpu",
                "trainer.enable_progress_bar=false",
            ]
            with contextlib.redirect_stdout(io.StringIO()):
                train(cfg("train", *common, f"paths.run_dir={run_dir}-fdr", "debug=fast_dev_run"))
                metrics = train(
                    cfg(
                        "train",
                        *common,
                        f"paths.run_dir={run_dir}",
                        "logger=none",
                        "trainer.max_steps=3",
                        "trainer.max_epochs=1",
                        "trainer.limit_val_batches=1",
                        "trainer.limit_test_batches=1",
                        "resume=false",
                    )
                )
                ckpt = f"{run_dir}/checkpoints/last.ckpt"
                evals = [
                    run_eval(
                        cfg(
                            "eval",
                            f"ckpt={ckpt}",
                            f"paths.root_dir={ROOT}",
                            "limit=100",
                            "device=cpu",
                            f"decode.beam_size={k}",
                            "verify.workers=0",
                        )
                    )
                    for k in (1, 5)
                ]
            beam = evals[1]["nbest"]
            print(
                f"{model:<10} {positions:<12} fast_dev_run ok | 3 steps: val/seq_acc {metrics['val/seq_acc']:.2f} | "
                f"eval greedy {evals[0]['greedy']['seq_acc']:.2f} | beam-5 top-1 {beam['top1_acc']:.2f} "
                f"@5 {beam['acc_at_5']:.2f} (n={evals[1]['n']}) | {time.perf_counter() - start:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
