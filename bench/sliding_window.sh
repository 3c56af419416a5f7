#!/usr/bin/env bash
# Whole-volume sliding-window inference (nnU-Net rules: step 0.5, Gaussian importance map, mirror
# TTA over the 3 axes off and on) of a 128^3 volume in 64^3 windows with the plain conv U-Net
# (base width 8, 4 stages): `medseg benchmark --mode sliding-window` and the same loop in PyTorch
# (bench/sliding_window_ref.py) in the same run, same threads, alternating.
# Usage: bash bench/sliding_window.sh [threads] [runs]   (env: SIZE PATCH FEATURES DEPTH WINDOW_BATCH WARMUP)
# Warm-up: one untimed volume without mirroring; none with mirroring, where the one warm-up
# network call that matters is 1 of 216 (WARMUP overrides both).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
runs=${2:-1}
size=${SIZE:-128}
patch=${PATCH:-64}
features=${FEATURES:-8}
depth=${DEPTH:-4}
wb=${WINDOW_BATCH:-1}
medseg=.build/release/medseg
[ -x "$medseg" ] || swift build -c release --product medseg >/dev/null
printf "%-7s %-16s %9s %16s %17s %7s %8s %6s  %s\n" mirror input "win batch" "MedSeg s/volume" "PyTorch s/volume" ratio windows calls "params (MedSeg/PyTorch)"
for mirror in 0 1; do
  flag=--no-mirror warmup=${WARMUP:-1}
  [ "$mirror" = 1 ] && flag=--mirror warmup=${WARMUP:-0}
  ours=$($medseg benchmark --mode sliding-window --model plainunet --dim 3 --size "$size" --patch "$patch" $flag \
         --window-batch "$wb" --features "$features" --depth "$depth" --warmup "$warmup" --steps "$runs" --threads "$threads" --json)
  theirs=$(/usr/bin/python3 bench/sliding_window_ref.py 3 "$size" "$patch" "$features" "$depth" "$mirror" "$wb" "$threads" "$warmup" "$runs")
  /usr/bin/python3 - "$ours" "$theirs" "$mirror" "${size}^3 / ${patch}^3" "$wb" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert (a["windows"], a["network_calls"]) == (b["windows"], b["network_calls"]), (a, b)
# ratio > 1: MedSeg is faster (PyTorch time / MedSeg time), as the other benchmarks' img/s ratios.
print(f"{'on' if sys.argv[3] == '1' else 'off':<7} {sys.argv[4]:<16} {sys.argv[5]:>9} {a['seconds_per_volume']:>16.2f} {b['seconds_per_volume']:>17.2f} "
      f"{b['seconds_per_volume'] / a['seconds_per_volume']:>7.2f} {a['windows']:>8} {a['network_calls']:>6}  {a['params']}/{b['params']}")
PY
done
