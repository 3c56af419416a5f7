#!/usr/bin/env bash
# Classic U-Net (31M parameters, batch 4, 256x256, 1 channel) training and inference steps:
# MedSeg and the PyTorch reference (../shared/bench/ref_unet.py, Debian's python3-torch on the same
# libtorch) timed in the same run, on the same threads, alternating to share machine noise.
# Usage: bash bench/unet.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-2}
medseg=.build/release/medseg
[ -x "$medseg" ] || swift build -c release --product medseg >/dev/null
ref=../shared/bench/ref_unet.py

for r in $(seq "$rounds"); do
  train=$($medseg benchmark --model unet --batch-size 4 --size 256 --mode train --warmup 2 --steps 3 --threads "$threads" --json)
  infer=$($medseg benchmark --model unet --batch-size 4 --size 256 --mode infer --warmup 2 --steps 3 --threads "$threads" --json)
  torch=$(/usr/bin/python3 "$ref" "$threads")
  /usr/bin/python3 - "$train" "$infer" "$torch" "$r" <<'PY'
import json, sys
train, infer, torch, r = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
if r == "1":
    print(f"{'round':<6}{'step':<8}{'MedSeg img/s':>14}{'PyTorch img/s':>15}{'ratio':>8}   params MedSeg/PyTorch: {train['params']}/{torch['params']}")
for name, ours, theirs in [("train", train["img_per_s"], torch["train_img_s_b4_256"]), ("infer", infer["img_per_s"], torch["infer_img_s_b4_256"])]:
    print(f"{r:<6}{name:<8}{ours:>14.3f}{theirs:>15.3f}{ours / theirs:>8.3f}")
PY
done
