#!/usr/bin/env bash
# Training data pipeline throughput (patch sampling with foreground oversampling and the full
# nnU-Net augmentation) against the U-Net training step it feeds, on this machine.
# Usage: bash bench/loader.sh
set -euo pipefail
cd "$(dirname "$0")/.."
medseg=.build/release/medseg
[ -x "$medseg" ] || swift build -c release --product medseg >/dev/null
printf "%-32s %10s %12s\n" "pipeline" "batches/s" "ms/batch"
for w in 0 2; do
  for spec in "2 256 8" "3 128 2"; do
    set -- $spec
    out=$($medseg benchmark --mode loader --dim "$1" --size "$2" --batch-size "$3" --warmup 2 --steps 10 --workers "$w" --json)
    python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"{sys.argv[2]:<32} {1000/r['step_ms']:>10.2f} {r['step_ms']:>12.1f}\")" "$out" "${1}D ${2}^${1} batch $3, $w workers"
  done
done
printf "\n%-32s %10s %12s\n" "U-Net training step (fed by it)" "steps/s" "ms/step"
for spec in "2 256 8 32" "3 128 2 16"; do
  set -- $spec
  out=$($medseg benchmark --model unet --dim "$1" --size "$2" --batch-size "$3" --features "$4" --depth 5 --warmup 1 --steps 2 --json)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"{sys.argv[2]:<32} {1000/r['step_ms']:>10.2f} {r['step_ms']:>12.1f}\")" "$out" "${1}D ${2}^${1} batch $3, width $4"
done
