#!/usr/bin/env bash
# The model zoo at (CPU-sized) seed input sizes: MedSeg's `medseg benchmark` and the PyTorch
# reference implementation of each model (bench/zoo_ref.py) in the same run, same threads.
# Usage: bash bench/zoo.sh [threads] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
steps=${2:-2}
medseg=${MEDSEG:-.build/release/medseg}
[ -x "$medseg" ] || swift build -c release --product medseg >/dev/null
printf "%-20s %-6s %-16s %12s %13s %7s  %s\n" model mode input "MedSeg img/s" "PyTorch img/s" ratio "params (MedSeg/PyTorch)"
# model dim size batch in classes features depth
# UltraLight VM-UNet is left out here: its PyTorch reference runs the selective scan as a Python
# loop over 1024 tokens (minutes per step); bench/selective_scan.sh compares the scans themselves.
models=${MODELS:-"unetpp plainunet setr_mla segresnet swinunetr mednext primus"}
for spec in "ultralight_vmunet 2 256 2 3 1 8 5" "unetpp 3 64 1 1 3 32 5" "plainunet 2 192 4 4 4 32 6" "setr_mla 2 224 2 3 1 768 12" \
            "segresnet 3 64 1 4 3 8 4" "swinunetr 3 64 1 1 14 48 4" \
            "mednext 3 64 1 1 3 32 4" "primus 3 64 1 1 3 8 4"; do
  set -- $spec
  case " $models " in *" $1 "*) ;; *) continue ;; esac
  for mode in train infer; do
    ours=$($medseg benchmark --model "$1" --dim "$2" --size "$3" --batch-size "$4" --in-channels "$5" --classes "$6" \
           --features "$7" --depth "$8" --mode "$mode" --warmup 1 --steps "$steps" --threads "$threads" --json)
    theirs=$(/usr/bin/python3 bench/zoo_ref.py "$1" "$mode" "$3" "$4" "$threads" 1 "$steps")
    /usr/bin/python3 - "$ours" "$theirs" "$1" "$mode" "$2D ${3} b$4" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{sys.argv[3]:<20} {sys.argv[4]:<6} {sys.argv[5]:<16} {a['img_per_s']:>12.3f} {b['img_per_s']:>13.3f} {a['img_per_s'] / b['img_per_s']:>7.2f}  {a['params']}/{b['params']}")
PY
  done
done
