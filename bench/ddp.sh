#!/usr/bin/env bash
# Data-parallel training steps on this machine: 2 ranks x 1 thread (Gloo, DDP buckets) against
# 1 rank x 2 threads with the same global batch, for the classic U-Net and a small U-Net; reports
# the all-reduce time and the fraction of it hidden behind backward.
# Usage: bash bench/ddp.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3}
medseg=.build/release/medseg
[ -x "$medseg" ] || swift build -c release --product medseg >/dev/null

run() { # name, per-rank batch, size, extra options
  local name=$1 b=$2 size=$3; shift 3
  one=$($medseg benchmark --batch-size $((2 * b)) --size "$size" --threads 2 --warmup 2 --steps "$steps" --json "$@")
  two=$($medseg benchmark --batch-size "$b" --size "$size" --threads 1 --warmup 2 --steps "$steps" --json --nproc-per-node 2 "$@" \
        | sed -n 's/^\[rank 0\] //p')
  python3 - "$name" "$one" "$two" <<'PY'
import json, sys
name, one, two = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{name:<28}{one['img_per_s']:>12.2f}{two['global_img_per_s']:>14.2f}{two['global_img_per_s'] / one['img_per_s']:>8.2f}"
      f"{two['allreduce_ms']:>14.1f}{two['hidden_fraction'] * 100:>9.0f}%")
PY
}

printf "%-28s%12s%14s%8s%14s%10s\n" "model (global batch)" "1x2 img/s" "2x1 img/s" "ratio" "allreduce ms" "hidden"
run "unet 64, 256x256 (b4)" 2 256 --features 64 --depth 5
run "unet 16, 128x128 (b8)" 4 128 --features 16 --depth 4
