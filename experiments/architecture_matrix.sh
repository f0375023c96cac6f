#!/usr/bin/env bash
# Acceptance matrix of issue 14: every {encoder-decoder, decoder-only} x position scheme trains
# `addition` under debug=fast_dev_run, then a 3-step run writes a checkpoint (fast_dev_run writes
# none) that symlit-eval evaluates greedily and with beam-5 on 100 test problems.
# Usage (from the repository root, venv active): bash experiments/architecture_matrix.sh
set -euo pipefail
export SYMLIT_ROOT=${SYMLIT_ROOT:-/tmp/symlit-matrix} WANDB_SILENT=true
train="python -m symlit.train"
evaluate="python -m symlit.evaluate"
for model in small gpt_small; do
  for positions in learned sinusoidal rope alibi none abacus abacus+rope; do
    if [[ $model == small && $positions == none ]]; then continue; fi  # NoPE is decoder-only
    overrides=(model=$model model.positions=$positions data.task.encoding=reversed)
    $train "${overrides[@]}" debug=fast_dev_run > /dev/null 2>&1 || { echo "$model $positions: fast_dev_run FAILED"; exit 1; }
    run="matrix-$model-${positions/+/-}"
    $train "${overrides[@]}" run_name=$run trainer.max_steps=3 trainer.max_epochs=1 trainer.limit_val_batches=1 \
      trainer.limit_test_batches=1 logger=none trainer.enable_progress_bar=false resume=true > /dev/null 2>&1 \
      || { echo "$model $positions: short run FAILED"; exit 1; }
    ckpt=$SYMLIT_ROOT/outputs/addition/$run/checkpoints/last.ckpt
    greedy=$($evaluate ckpt=$ckpt limit=100 decode.beam_size=1 verify.workers=0 2>/dev/null | head -1)
    beam=$($evaluate ckpt=$ckpt limit=100 decode.beam_size=5 verify.workers=0 2>/dev/null | head -1)
    echo "$model $positions | fast_dev_run ok | eval greedy: $greedy | eval beam-5: $beam"
  done
done
