#!/usr/bin/env bash
# The GPU check: one bounded command that trains the synthetic `washer` category on a device
# with an empty tuning cache, trains again with the cache the first run kept, scores the test
# split, and writes OUT/summary.json: time to the first step of each stage (cold and with the
# kept cache), the kernels tuned in each run, training and inference images/s, peak memory, the
# test AUROC, and what failed. The kept cache stays (OUT/cache, or --cache). `.ci/run` runs it on `wgpu`
# (Mesa's lavapipe) with `--size tiny`, so it cannot rot; on a lent GPU, with a
# `--features cuda` release binary: `scripts/gpu-check.sh cuda:0`.
#
#   scripts/gpu-check.sh [--bin FILE] [--size tiny|full] [--autotune LEVEL] [--out DIR]
#                        [--cache DIR] [--limit SECONDS] [--torch] DEVICE
#
#   --bin       the slsg binary (default target/release/slsg)
#   --size      tiny: scripts/gpu-tiny.toml (32 px, an eighth of the paper's width, 6 + 6 steps);
#               full (default): 256 px, the paper's width, 200 + 200 steps, batch 16 prediction
#   --autotune  the GPU backends' autotune level (default: the binary's)
#   --out       where summary.json and the logs go (default gpu-check/<device>)
#   --cache     the slsg cache folder the runs share (default OUT/cache); its gpu/ is emptied
#               first, and the tuning results stay there for later runs of the same shapes
#   --limit     the whole check's time bound in seconds (default 600); a step that would run
#               past it is stopped and reported as failed
#   --torch     also run bench/torch_reference.py on the same device (CUDA only)
#
# Exits non-zero when any step failed, or when the run with the kept cache tuned a kernel or
# reached its first steps no sooner; summary.json is written either way.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/slsg
SIZE=full
AUTOTUNE=()
OUT=
CACHE=
LIMIT=600
TORCH=0
DEVICE=
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=${2:?--bin needs a file}; shift 2 ;;
    --size) SIZE=${2:?--size needs tiny or full}; shift 2 ;;
    --autotune) AUTOTUNE=(--autotune "${2:?--autotune needs a level}"); shift 2 ;;
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --cache) CACHE=${2:?--cache needs a folder}; shift 2 ;;
    --limit) LIMIT=${2:?--limit needs seconds}; shift 2 ;;
    --torch) TORCH=1; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$DEVICE" ] || { echo "gpu-check: one device, got $DEVICE and $1" >&2; exit 2; }
       DEVICE=$1; shift ;;
  esac
done
[ -n "$DEVICE" ] || { echo "gpu-check: name a device (wgpu, wgpu:N, cuda:N; see --help)" >&2; exit 2; }
case "$SIZE" in tiny|full) ;; *) echo "gpu-check: --size is tiny or full, got $SIZE" >&2; exit 2 ;; esac
case "$LIMIT" in ''|*[!0-9]*) echo "gpu-check: --limit is whole seconds, got $LIMIT" >&2; exit 2 ;; esac
[ -x "$BIN" ] || { echo "gpu-check: $BIN is not an executable (build it, or pass --bin)" >&2; exit 2; }
OUT=${OUT:-gpu-check/${DEVICE//:/-}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/slsg-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
FAILED="$OUT/failed.txt"
: > "$FAILED"
CACHE=${CACHE:-$OUT/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
rm -rf "$OUT"/*.log "$OUT"/*.jsonl "$OUT/summary.json" "$OUT/memory.csv" "$CACHE/gpu"

if [ "$SIZE" = tiny ]; then
  SYNTH=(--size 32 --train 12 --test-per-defect 2)
  SETTINGS=(--config "$ROOT/scripts/gpu-tiny.toml")
  PREDICT_BATCHES=(2)
else
  SYNTH=(--size 256 --train 48)
  SETTINGS=(--set pretrain.max_steps=200 --set segnet.steps=200 --set segnet.validate_every=100
            --set segnet.checkpoint_every=100 --set pretrain.checkpoint_every=100
            --set pretrain.log_every=5 --set segnet.log_every=5)
  PREDICT_BATCHES=(16 1)
fi
# The second fit only needs its first steps: it measures what the kept cache saves.
WARM=(--set pretrain.max_steps=3 --set segnet.steps=3 --set segnet.validate_every=3
      --set pretrain.log_every=1 --set segnet.log_every=1)

# Runs a named step within what is left of the time bound; its output goes to OUT/<name>.log.
# A step that fails or runs out of time is recorded in failed.txt with its last line.
step() {
  local name=$1; shift
  local left=$(( LIMIT - ($(date +%s) - START) ))
  if [ "$left" -le 5 ]; then
    echo "$name: not run, the $LIMIT s bound was spent" >> "$FAILED"
    return 1
  fi
  timeout --kill-after=10 "$left" "$@" > "$OUT/$name.log" 2>&1
  local status=$?
  if [ $status -eq 124 ] || [ $status -eq 137 ]; then
    echo "$name: stopped at the $LIMIT s bound" >> "$FAILED"
  elif [ $status -ne 0 ]; then
    echo "$name: exit $status: $(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1)" >> "$FAILED"
  fi
  return $status
}

# Runs a command and writes its peak resident memory (KiB, children included) to a file.
PEAK_RSS=(python3 -c 'import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)')

if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$OUT/memory.csv" 2> /dev/null &
  SAMPLER=$!
  trap 'kill $SAMPLER 2> /dev/null; rm -rf "$WORK"' EXIT
fi

export SLSG_LOG=${SLSG_LOG:-info}
FIT=(fit --dataset "$WORK/data" --category washer --device "$DEVICE" --cache "$CACHE" "${AUTOTUNE[@]}")
if step synth "$BIN" synth --out "$WORK/data" "${SYNTH[@]}"; then
  if step fit "${PEAK_RSS[@]}" "$WORK/fit.rss" "$BIN" "${FIT[@]}" --out "$WORK/cold" "${SETTINGS[@]}"; then
    for batch in "${PREDICT_BATCHES[@]}"; do
      step "predict-batch-$batch" "$BIN" predict --model "$WORK/cold/segnet/model" \
        --input "$WORK/data/washer" --out "$WORK/maps-$batch" --device "$DEVICE" \
        --cache "$CACHE" "${AUTOTUNE[@]}" --batch-size "$batch"
    done
  fi
  step fit-kept-cache "$BIN" "${FIT[@]}" --out "$WORK/warm" "${SETTINGS[@]}" "${WARM[@]}"
fi
if [ "$TORCH" = 1 ]; then
  step torch python3 "$ROOT/bench/torch_reference.py" full 16 cuda
fi
[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2> /dev/null
for run in cold warm; do
  for stage in pretrain segnet; do
    cp "$WORK/$run/$stage/curve.jsonl" "$OUT/$run-$stage-curve.jsonl" 2> /dev/null
  done
done
cp "$WORK/cold/segnet/eval.json" "$OUT/eval.json" 2> /dev/null

python3 - "$OUT" "$DEVICE" "$SIZE" "$LIMIT" "$(( $(date +%s) - START ))" "$WORK/fit.rss" <<'PY'
import json, os, re, sys
out, device, size, limit, seconds, rss_file = sys.argv[1:7]

def read(name):
    try:
        return open(os.path.join(out, name)).read()
    except OSError:
        return None

def events(name):
    text = read(name) or ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]

def first_step(run, stage):
    found = [e["seconds"] for e in events(f"{run}-{stage}-curve.jsonl") if e.get("event") == "first_step"]
    return round(found[0], 2) if found else None

def training_rate(stage):
    rates = [e["images_per_second"] for e in events(f"cold-{stage}-curve.jsonl") if e.get("event") == "step"]
    steady = rates[len(rates) // 2:]
    return round(sum(steady) / len(steady), 2) if steady else None

def tuned(log):
    # CubeCL logs every kernel shape it benchmarks ("Tuning <key>"); a kept cache tunes none.
    text = read(log)
    return None if text is None else len(re.findall(r"Tuning ", text))

inference = {}
for name in sorted(os.listdir(out)):
    match = re.fullmatch(r"predict-batch-(\d+)\.log", name)
    rate = re.search(r"\(([\d.]+) images/s\)", read(name) or "") if match else None
    if rate:
        inference[f"batch_{match.group(1)}"] = float(rate.group(1))
evaluation = json.loads(read("eval.json") or "null")
memory = [int(v) for v in (read("memory.csv") or "").split() if v.strip().isdigit()]
try:
    peak_rss = round(int(open(rss_file).read()) / 1024)
except (OSError, ValueError):
    peak_rss = None
failed = [line for line in (read("failed.txt") or "").splitlines() if line.strip()]
first = {run: {stage: first_step(run, stage) for stage in ("pretrain", "segnet")} for run in ("cold", "warm")}
tuned_runs = {"cold": tuned("fit.log"), "warm": tuned("fit-kept-cache.log")}
if tuned_runs["warm"]:
    failed.append(f"the kept cache: the second fit tuned {tuned_runs['warm']} kernels again")
for stage in ("pretrain", "segnet"):
    cold, warm = first["cold"][stage], first["warm"][stage]
    if cold is not None and warm is not None and warm >= cold:
        failed.append(f"the kept cache: {stage}'s first step took {warm} s, {cold} s without it")
summary = {
    "device": device,
    "size": size,
    "gpu": (read("gpu.txt") or "").strip() or None,
    "seconds": int(seconds),
    "limit_seconds": int(limit),
    "first_step_seconds": first,
    "kernels_tuned": tuned_runs,
    "training_images_per_second": {stage: training_rate(stage) for stage in ("pretrain", "segnet")},
    "inference_images_per_second": inference,
    "peak_gpu_memory_mib": max(memory) if memory else None,
    "peak_host_memory_mib": peak_rss,
    "test_image_auroc": evaluation and evaluation.get("image_auroc"),
    "test_pixel_auroc": evaluation and evaluation.get("pixel_auroc"),
    "failed": failed,
}
text = json.dumps(summary, indent=2)
open(os.path.join(out, "summary.json"), "w").write(text + "\n")
open(os.path.join(out, "failed.txt"), "w").write("".join(f"{line}\n" for line in failed))
print(text)
PY
[ ! -s "$FAILED" ]
