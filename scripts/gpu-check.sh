#!/usr/bin/env bash
# The GPU check: one short `slsg fit` of a synthetic category at 256 px on CUDA with the
# `--features cuda` binary, printing training and inference images/s and peak GPU memory, then
# PyTorch running the same architecture on the same GPU for comparison.
#
# Usage (on a machine with an NVIDIA driver): scripts/gpu-check.sh BINARY OUTPUT_DIR
set -euo pipefail
BIN=${1:?the slsg binary built with --features cuda}
OUT=${2:?a folder for the results}
WORK=${WORK:-/tmp/slsg-gpu}
mkdir -p "$OUT" "$WORK/lib"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

# Burn's CUDA backend loads libcuda and compiles its kernels with NVRTC at run time.
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || echo /nonexistent)
for name in libnvrtc libnvrtc-builtins libcuda; do
  found=$(find /usr/local/cuda/ /usr/local/cuda/lib64/ /usr/local/nvidia/ /usr/lib/x86_64-linux-gnu/ "$SITE/nvidia/" \
    -maxdepth 4 -name "$name.so*" 2>/dev/null | sort | tail -n 1 || true)
  if [ -n "$found" ]; then
    ln -sf "$found" "$WORK/lib/$name.so"
    ln -sf "$found" "$WORK/lib/$(basename "$found")"
    echo "$name: $found"
  fi
done
export LD_LIBRARY_PATH="$WORK/lib:/usr/local/nvidia/lib64:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# On a fresh machine Burn's CUDA backend benchmarks every convolution shape before using it
# (53 shapes took over 190 s at the default level); `minimal` tunes least. CubeCL keeps the
# results under the project's `target/autotune`, saved to the output for the next run.
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}

"$BIN" synth --out "$WORK/data" --size 256 --train 48 > /dev/null
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$OUT/memory.csv" &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true; cp "$WORK/run/curve.jsonl" "$OUT/" 2>/dev/null || true; tar czf "$OUT/autotune.tgz" target/autotune 2>/dev/null || true' EXIT

STEPS=${STEPS:-200}
time "$BIN" fit --dataset "$WORK/data" --category washer --out "$WORK/run" --device cuda:0 \
  --set pretrain.max_steps="$STEPS" --set segnet.steps="$STEPS" --set segnet.validate_every=100 \
  --set segnet.checkpoint_every=100 --set pretrain.checkpoint_every=100 --set pretrain.log_every=5 --set segnet.log_every=5 \
  ${EXTRA:-} 2>&1 | tr '\r' '\n' | grep --line-buffered -v '^\s*$' | tee "$OUT/fit.txt"
"$BIN" predict --model "$WORK/run/model" --input "$WORK/data/washer" --out "$WORK/maps16" --device cuda:0 --batch-size 16 | tee "$OUT/predict16.txt"
"$BIN" predict --model "$WORK/run/model" --input "$WORK/data/washer" --out "$WORK/maps1" --device cuda:0 --batch-size 1 | tee "$OUT/predict1.txt"
kill $SAMPLER 2>/dev/null || true
cp "$WORK/run/curve.jsonl" "$WORK/run/eval.json" "$OUT/" 2>/dev/null || true

python3 - "$WORK/run/curve.jsonl" "$OUT/memory.csv" <<'PY' | tee "$OUT/summary.txt"
import json, sys
rates = {}
for line in open(sys.argv[1]):
    event = json.loads(line)
    if event.get("event") == "step":
        rates.setdefault(event["stage"], []).append(event["images_per_second"])
for stage, values in rates.items():
    steady = values[len(values) // 2:]
    print(f"{stage}: {sum(steady) / len(steady):.1f} training images/s (mean of the last {len(steady)} reports)")
memory = [int(v) for v in open(sys.argv[2]).read().split() if v.strip().isdigit()]
print(f"peak GPU memory used: {max(memory) if memory else 'n/a'} MiB")
PY

if [ -f bench/torch_reference.py ]; then
  python3 bench/torch_reference.py full 16 cuda 2>&1 | tee "$OUT/torch_cuda.txt" || true
fi
