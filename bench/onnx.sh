#!/usr/bin/env bash
# ONNX Runtime's CPU inference of networks `medseg export` wrote, beside MedSeg's inference of the same
# network and patch (issue 35): per network a run of one training iteration on the synthetic data set
# (the weights do not change the time), exported to ONNX; then on THREADS threads, alternating in each
# round, `medseg benchmark --mode infer` (the network built from the run's settings, batch 1, the patch,
# random input) and bench/onnx_ref.py (onnxruntime's CPU provider, THREADS intra-op threads, the same
# batch and patch). Runs and files are kept in DIR for the next call (remade when NETS' settings change).
# Usage: bash bench/onnx.sh [threads] [rounds]   (default 2, 2)
# env: DIR=runs/bench-onnx MEDSEG=.build/release/medseg WARMUP=2 STEPS=3 HALF=0 (1: also the --half export)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-2}
dir=${DIR:-runs/bench-onnx}
medseg=${MEDSEG:-.build/release/medseg}
warmup=${WARMUP:-2}
steps=${STEPS:-3}
[ -x "$medseg" ] || { echo "onnx.sh: no $medseg; build it: swift build -c release --product medseg" >&2; exit 1; }
/usr/bin/python3 -c "import onnxruntime" 2>/dev/null || { echo "onnx.sh: /usr/bin/python3 has no onnxruntime (bash scripts/setup.sh)" >&2; exit 1; }

# name | dims | model | features | depth | patch ((z,) y, x) | outputs (the synthetic data: 2D binary, 3D two classes)
nets=(
  "unet-2d|2|unet|32|5|256,256|1"
  "plainunet-3d|3|plainunet|32|5|96,96,96|3"
  "segresnet-3d|3|segresnet|16|4|96,96,96|3"
)
mkdir -p "$dir"
for dims in 2 3; do
  if [ ! -f "$dir/data${dims}d/dataset.json" ]; then
    size=$([ "$dims" = 2 ] && echo 256,256 || echo 96,96,96)
    "$medseg" data synth --dim "$dims" --cases 5 --test-cases 1 --size "$size" --out "$dir/data${dims}d" --overwrite >/dev/null
  fi
done
for net in "${nets[@]}"; do
  IFS='|' read -r name dims model features depth patch outputs <<<"$net"
  run=$dir/$name
  if [ "$(cat "$run.stamp" 2>/dev/null)" != "$net" ]; then
    rm -rf "$run" "$run.onnx" "$run-half.onnx"
    "$medseg" train --dataset "$dir/data${dims}d" --model "$model" --features "$features" --depth "$depth" --patch-size "$patch" \
      --epochs 1 --iterations 1 --batch-size 1 --threads "$threads" --out "$run" >"$run.train.log" 2>&1
    "$medseg" export "$run" "$run.onnx" >/dev/null
    "$medseg" export "$run" "$run-half.onnx" --half >/dev/null
    echo "$net" > "$run.stamp"
  fi
done

printf '%-6s %-14s %-11s %12s %12s %16s %8s\n' round network patch "MedSeg ms" "ORT ms" "ORT float16 ms" "ORT/MedSeg"
for r in $(seq "$rounds"); do
  for net in "${nets[@]}"; do
    IFS='|' read -r name dims model features depth patch outputs <<<"$net"
    ours=$("$medseg" benchmark --model "$model" --dim "$dims" --features "$features" --depth "$depth" --size "$patch" --classes "$outputs" \
      --batch-size 1 --mode infer --warmup "$warmup" --steps "$steps" --threads "$threads" --json)
    theirs=$(/usr/bin/python3 bench/onnx_ref.py "$dir/$name.onnx" "$threads" "$patch" 1 "$warmup" "$steps")
    half='{"step_ms": null}'
    [ "${HALF:-0}" = 1 ] && half=$(/usr/bin/python3 bench/onnx_ref.py "$dir/$name-half.onnx" "$threads" "$patch" 1 "$warmup" "$steps")
    /usr/bin/python3 - "$r" "$name" "$patch" "$ours" "$theirs" "$half" <<'PY'
import json, sys
r, name, patch = sys.argv[1:4]
ours, theirs, half = (json.loads(a) for a in sys.argv[4:7])
h = f"{half['step_ms']:16.1f}" if half["step_ms"] is not None else f"{'-':>16}"
print(f"{r:<6} {name:<14} {patch:<11} {ours['step_ms']:12.1f} {theirs['step_ms']:12.1f} {h} {theirs['step_ms'] / ours['step_ms']:8.2f}")
PY
  done
done
