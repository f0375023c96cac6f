#!/usr/bin/env bash
# GPU readiness in one prepared script, under 8 minutes on one GPU (run from anywhere):
#   1. fp32, 16-mixed and bf16-mixed training of the base-size model (conf/model/base.yaml: 6+6 layers,
#      d_model 512, 8 heads) on the same batches: throughput, MFU, final loss against fp32;
#   2. greedy decoding eager, compiled (symlit's decode.compile) and compiled with CUDA graphs
#      (torch.compile mode="reduce-overhead"): throughput and whether the tokens equal eager's;
#   3. a 1-GPU DDP run of symlit-train (trainer=ddp trainer.devices=1) to the end (metrics.json).
# Without a CUDA GPU it says so and exits 0. Results: stdout and $OUT_DIR (default: a temp dir).
#   bash benchmarks/gpu_check.sh [--steps 200]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=200
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) STEPS=$2; shift 2 ;;
    *) echo "usage: $0 [--steps N]" >&2; exit 2 ;;
  esac
done

if ! command -v nvidia-smi > /dev/null 2>&1 \
   || ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
  echo "gpu_check: no CUDA GPU available here (nvidia-smi or torch.cuda.is_available()); nothing to check."
  exit 0
fi

OUT_DIR=${OUT_DIR:-$(mktemp -d -t symlit-gpu-check-XXXX)}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=offline WANDB_SILENT=true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/gpu.txt"
start=$(date +%s)

echo "== 1+2. precision training and compiled decoding (base model) =="
timeout 330 python - "$STEPS" "$OUT_DIR" <<'PY' 2>&1 | tee "$OUT_DIR/precision_decoding.log"
import functools, json, logging, math, sys, time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import symlit.models.seq2seq as symlit_model
from symlit.core.config import config_dir
from symlit.evaluation.decoding import greedy_decode
from symlit.models.seq2seq import Seq2SeqTransformer, TransformerConfig

steps, out_dir = int(sys.argv[1]), sys.argv[2]
PAD, BOS, EOS, VOCAB, LEN, BATCH = 0, 1, 2, 64, 64, 64
device = torch.device("cuda")
name = torch.cuda.get_device_name()
# dense peak FLOP/s per precision (vendor figures without sparsity); other GPUs: set PEAK_TFLOPS
PEAKS = {"H200": {"32-true": 67e12, "16-mixed": 989e12, "bf16-mixed": 989e12},
         "H100": {"32-true": 67e12, "16-mixed": 989e12, "bf16-mixed": 989e12},
         "A100": {"32-true": 19.5e12, "16-mixed": 312e12, "bf16-mixed": 312e12},
         "L40S": {"32-true": 91.6e12, "16-mixed": 362e12, "bf16-mixed": 362e12}}
peaks = next((v for k, v in PEAKS.items() if k in name), None)
cfg = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "base.yaml")).items()
       if k != "_target_"}
config = TransformerConfig(**{**cfg, "vocab_size": VOCAB, "pad_id": PAD, "dropout": 0.0})


def batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Copy task: target = source, then EOS (the same batches for every precision)."""
    src = torch.randint(3, VOCAB, (BATCH, LEN), generator=generator)  # (B, S)
    tgt = torch.cat([src, torch.full((BATCH, 1), EOS)], 1)  # (B, S+1)
    tgt_in = torch.cat([torch.full((BATCH, 1), BOS), tgt[:, :-1]], 1)  # (B, S+1)
    return src.to(device), tgt_in.to(device), tgt.to(device)


def train(precision: str) -> dict:
    torch.manual_seed(0)
    model = Seq2SeqTransformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "16-mixed")
    generator = torch.Generator().manual_seed(0)
    losses, times = [], []
    for step in range(steps):
        src, tgt_in, tgt = batch(generator)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(src, tgt_in)  # (B, S+1, V)
            loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tgt.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    timed = sorted(times[10:])  # the first steps warm up kernels and the allocator
    seconds = timed[len(timed) // 2]
    tokens = BATCH * (2 * LEN + 1)  # source + target tokens per step
    flops = 6 * model.num_parameters() * tokens  # the usual 6 N T estimate (attention not counted)
    peak = float(__import__("os").environ.get("PEAK_TFLOPS", 0)) * 1e12 or (peaks or {}).get(precision)
    return {"precision": precision, "tokens_per_s": tokens / seconds, "step_ms": 1000 * seconds,
            "mfu": flops / seconds / peak if peak else None, "final_loss": sum(losses[-20:]) / 20,
            "finite": all(math.isfinite(x) for x in losses), "model": model}


results = [train(p) for p in ("32-true", "16-mixed", "bf16-mixed")]
fp32 = results[0]["final_loss"]
print(f"{'precision':<11} {'tokens/s':>10} {'step ms':>8} {'MFU':>6} {'final loss':>11} {'vs fp32':>8}")
for r in results:
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
    print(f"{r['precision']:<11} {r['tokens_per_s']:>10.0f} {r['step_ms']:>8.1f} {mfu:>6} {r['final_loss']:>11.4f} "
          f"{(r['final_loss'] - fp32) / fp32:>+8.1%}{'' if r['finite'] else '  NON-FINITE LOSS'}")

# ---- decoding: eager, compiled (symlit's default mode), compiled with CUDA graphs
model = results[0]["model"].eval()
src = batch(torch.Generator().manual_seed(1))[0]
cudagraph_notes: list[str] = []


class Notes(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "cudagraph" in record.getMessage().lower():
            cudagraph_notes.append(record.getMessage())


logging.getLogger("torch").addHandler(Notes())
torch._logging.set_logs(perf_hints=True)  # inductor says here when it skips CUDA graphs, and why


def timed_decode(compile: bool, repeats: int = 5) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        greedy_decode(model, src, BOS, EOS, LEN + 1, compile=compile)  # warm-up (compiles)
        greedy_decode(model, src, BOS, EOS, LEN + 1, compile=compile)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = greedy_decode(model, src, BOS, EOS, LEN + 1, compile=compile)
        torch.cuda.synchronize()
    return BATCH * repeats / (time.perf_counter() - t0), out.tokens


decoding = {}
eager_rate, eager_tokens = timed_decode(False)
decoding["eager"] = (eager_rate, True)
rate, tokens = timed_decode(True)
decoding["compiled"] = (rate, torch.equal(tokens, eager_tokens))
if hasattr(symlit_model, "compiled_step"):  # the hook symlit's compile=True goes through
    torch._dynamo.reset()
    symlit_model.compiled_step = functools.cache(lambda step: torch.compile(step, mode="reduce-overhead"))
    rate, tokens = timed_decode(True)
    decoding["reduce-overhead"] = (rate, torch.equal(tokens, eager_tokens))
else:
    print("reduce-overhead: skipped (symlit.models.seq2seq.compiled_step is gone; update this script)")
print(f"\n{'greedy decoding':<16} {'samples/s':>10} {'x eager':>8}  tokens = eager")
for key, (rate, same) in decoding.items():
    print(f"{key:<16} {rate:>10.0f} {rate / eager_rate:>8.2f}  {same}")
print("CUDA graphs:", "; ".join(sorted(set(cudagraph_notes))[:3]) or "no 'skipping cudagraphs' hint from inductor")
with open(f"{out_dir}/precision_decoding.json", "w") as f:
    json.dump({"gpu": name, "training": [{k: v for k, v in r.items() if k != "model"} for r in results],
               "decoding": {k: {"samples_per_s": v[0], "tokens_equal_eager": v[1]} for k, v in decoding.items()},
               "cudagraph_notes": cudagraph_notes[:10]}, f, indent=1)
PY

echo "== 3. DDP on one GPU (symlit-train trainer=ddp trainer.devices=1) =="
SYMLIT_ROOT="$OUT_DIR" timeout 150 python -m symlit.training.train experiment=addition trainer=ddp trainer.devices=1 \
  data.task.n_train=4000 trainer.max_steps=100 logger=csv trainer.enable_progress_bar=false run_name=gpu-check-ddp \
  > "$OUT_DIR/ddp.log" 2>&1 || { tail -30 "$OUT_DIR/ddp.log"; echo "gpu_check: DDP run FAILED"; exit 1; }
python - "$OUT_DIR/outputs/addition/gpu-check-ddp/metrics.json" <<'PY'
import json, sys

m = json.load(open(sys.argv[1]))
ok = m["finished"] and m["world_size"] == 1 and m["global_step"] == 100
print(f"DDP: world_size {m['world_size']}, global_step {m['global_step']}, "
      f"test/seq_acc {m['metrics'].get('test/seq_acc', float('nan')):.4f}, {'OK' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
echo "gpu_check: done in $(( $(date +%s) - start )) s; results in $OUT_DIR"
