#!/usr/bin/env bash
# The GPU check, for one machine with an NVIDIA GPU (sized for an H200 with 16 cores: under 8
# minutes once the CUDA torch wheel is installed): builds the CUDA variant through the set-up,
# runs every CUDA test, checks AMP against fp32 when `medseg benchmark` has --precision, and prints
# MedSeg vs PyTorch (the same wheel, bench/ref_plain_unet.py) training img/s for nnU-Net's plain
# conv U-Net, 2D batch 64 and 3D batch 2, beside NVIDIA's published A100 AMP figures; then the
# data pipeline with augmentation on CPU and GPU, and UltraLight VM-UNet training (scan kernels).
# Usage: bash scripts/gpu-check.sh [--dry-run]   (--dry-run: print the steps, run nothing on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
start=$(date +%s)
log_dir=${GPU_CHECK_LOGS:-runs/gpu-check}
mkdir -p "$log_dir"

say() { printf '[gpu-check %4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { say "FAILED: $*"; exit 1; }
# step NAME SECONDS COMMAND...: runs COMMAND under a timeout, its output in $log_dir/NAME.log.
step() {
  local name=$1 limit=$2; shift 2
  say "$name (limit ${limit}s): $*"
  if [ "$dry" = 1 ]; then return 0; fi
  local rc=0
  timeout --kill-after=10 "$limit" "$@" >"$log_dir/$name.log" 2>&1 || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then tail -20 "$log_dir/$name.log"; fail "$name ran past ${limit}s (log: $log_dir/$name.log)"; fi
  if [ "$rc" != 0 ]; then tail -40 "$log_dir/$name.log"; fail "$name exited with $rc (log: $log_dir/$name.log)"; fi
}

if [ "$dry" = 0 ]; then
  if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } && [ ! -e /proc/driver/nvidia/version ]; then
    fail "no NVIDIA driver here (nvidia-smi and /proc/driver/nvidia/version are missing); run this on a GPU machine"
  fi
  nvidia-smi -L 2>/dev/null || true
fi

# 1. The CUDA engine: PyPI's torch wheel in .deps/torch-cuda (downloads ~3 GB the first time).
step setup 420 env MEDSEG_ENGINE=cuda bash scripts/setup.sh
if [ "$dry" = 0 ]; then
  [ -f .deps/libtorch.env ] || fail "the set-up wrote no .deps/libtorch.env"
  grep -q '^MEDSEG_ENGINE := cuda' .deps/libtorch.env || fail "the set-up did not choose the CUDA engine: $(cat .deps/libtorch.env)"
  LIBTORCH=$(sed -n 's/^LIBTORCH := //p' .deps/libtorch.env)
  ld=$(sed -n 's/^MEDSEG_LD_LIBRARY_PATH := //p' .deps/libtorch.env)
  export LIBTORCH LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Python sees the same wheel (torch/ and nvidia/ live in .deps/torch-cuda).
  export PYTHONPATH="$(dirname "$LIBTORCH")${PYTHONPATH:+:$PYTHONPATH}"
  say "LIBTORCH=$LIBTORCH"
fi
build=.build-cuda
jobs=$(nproc)

# 2. Build: tests (debug) and the release tool, into the CUDA build path.
step build-tests 300 swift build --build-path "$build" --build-tests -j "$jobs"
step build-release 300 swift build --build-path "$build" -c release --product medseg -j "$jobs"
medseg=$build/release/medseg
step doctor 60 "$medseg" doctor
[ "$dry" = 1 ] || { cat "$log_dir/doctor.log"; grep -q "CUDA libtorch" "$log_dir/doctor.log" || fail "medseg doctor does not report the CUDA libtorch"; }
[ "$dry" = 1 ] || grep -q "selective scan *cuda:0 NVRTC CUDA kernels" "$log_dir/doctor.log" \
  || fail "the selective scan's NVRTC kernels did not load on cuda:0 (doctor: $(grep 'selective scan' "$log_dir/doctor.log"))"

# 3. Every CUDA test (their names say CUDA or GPU; they skip without a device, so count skips).
step cuda-tests 240 env OMP_WAIT_POLICY=PASSIVE swift test --build-path "$build" --skip-build \
  --filter 'CUDA|Cuda|GPU|Gpu|SelectiveScanTests'
if [ "$dry" = 0 ]; then
  grep -E "Executed|error:" "$log_dir/cuda-tests.log" | tail -5
  if grep -q "skipped - no CUDA" "$log_dir/cuda-tests.log"; then fail "CUDA tests skipped: libtorch sees no CUDA device"; fi
fi

# 4. Benchmarks: MedSeg vs PyTorch on the same wheel. nnU-Net's 2D (BraTS-like 4 modalities,
# 4 outputs, 192^2 patch, 6 stages) batch 64 and 3D (128^3, 6 stages) batch 2 training steps.
has_precision=0
if [ "$dry" = 0 ] && "$medseg" benchmark --help 2>&1 | grep -q -- "--precision"; then has_precision=1; fi
has_cl=0
if [ "$dry" = 0 ] && "$medseg" benchmark --help 2>&1 | grep -q -- "--channels-last"; then has_cl=1; fi
precisions="fp32"
[ "$dry" = 1 ] && say "dry run: --precision and --channels-last are looked up in medseg benchmark --help on the GPU machine"
if [ "$has_precision" = 1 ]; then precisions="fp32 bf16 fp16"; else say "medseg benchmark has no --precision yet: AMP/fp32 parity and AMP rows skipped"; fi

results=$log_dir/results.tsv
: > "$results"
bench() { # dim batch size depth precision
  local dim=$1 batch=$2 size=$3 depth=$4 prec=$5 extra=() ref_extra=()
  [ "$prec" != fp32 ] && extra+=(--precision "$prec")
  [ "$has_precision" = 1 ] && [ "$prec" = fp32 ] && extra+=(--precision fp32)
  if [ "$has_cl" = 1 ]; then extra+=(--channels-last); ref_extra+=(--channels-last); fi
  local name="bench-${dim}d-$prec"
  step "$name-medseg" 150 "$medseg" benchmark --model plainunet --dim "$dim" --batch-size "$batch" --size "$size" \
    --in-channels 4 --classes 4 --features 32 --depth "$depth" --mode train --warmup 3 --steps 10 --device cuda --json "${extra[@]}"
  step "$name-torch" 150 python3 bench/ref_plain_unet.py --dim "$dim" --batch-size "$batch" --size "$size" \
    --in-channels 4 --classes 4 --features 32 --depth "$depth" --precision "$prec" --warmup 3 --steps 10 "${ref_extra[@]}"
  [ "$dry" = 1 ] || printf '%s\t%s\t%s\t%s\t%s\n' "$dim" "$batch" "$prec" \
    "$(tail -1 "$log_dir/$name-medseg.log")" "$(tail -1 "$log_dir/$name-torch.log")" >> "$results"
}
for prec in $precisions; do
  bench 2 64 192 6 "$prec"
  bench 3 2 128 6 "$prec"
done

# 5. The data pipeline (patch sampling + nnU-Net augmentation, 3D 128^3 batch 2) with the
# augmentation on the CPU and on the GPU, and UltraLight VM-UNet training on the scan kernels.
for dev in cpu cuda; do
  step "loader-$dev" 120 "$medseg" benchmark --mode loader --dim 3 --batch-size 2 --size 128 --workers 4 \
    --warmup 2 --steps 6 --device "$dev" --json
done
step vmunet-train 120 "$medseg" benchmark --model ultralight_vmunet --mode train --size 256 --batch-size 8 \
  --in-channels 3 --warmup 3 --steps 10 --device cuda --json
if [ "$dry" = 0 ]; then
  for name in loader-cpu loader-cuda vmunet-train; do say "$name: $(tail -1 "$log_dir/$name.log")"; done
fi

[ "$dry" = 1 ] && { say "dry run: nothing was run"; exit 0; }
python3 - "$results" "$has_precision" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
nvidia = {("2", "amp"): 1238.68, ("3", "amp"): 27.48}   # NVIDIA DeepLearningExamples nnU-Net, A100, AMP training
print(f"\n{'model':<22}{'precision':<10}{'MedSeg img/s':>14}{'PyTorch img/s':>15}{'ratio':>8}{'A100 AMP (NVIDIA)':>20}")
by = {}
for dim, batch, prec, ours, theirs in rows:
    o, t = json.loads(ours), json.loads(theirs)
    by[(dim, prec)] = (o, t)
    ref = nvidia[(dim, "amp")] if prec != "fp32" else float("nan")
    print(f"{'plain U-Net ' + dim + 'D b' + batch:<22}{prec:<10}{o['img_per_s']:>14.2f}{t['img_per_s']:>15.2f}"
          f"{o['img_per_s'] / t['img_per_s']:>8.3f}{ref:>20.2f}")
if sys.argv[2] == "1":
    # AMP/fp32 parity: AMP must not be slower than fp32, and where the benchmark reports its loss
    # the losses of the same random problem agree within 5%.
    bad = []
    for dim in ("2", "3"):
        f = by.get((dim, "fp32"))
        for prec in ("bf16", "fp16"):
            a = by.get((dim, prec))
            if not f or not a: continue
            if "loss" in f[0] and "loss" in a[0] and abs(a[0]["loss"] - f[0]["loss"]) > 0.05 * abs(f[0]["loss"]):
                bad.append(f"{dim}D {prec}: loss {a[0]['loss']:.4f} vs fp32 {f[0]['loss']:.4f}")
            if a[0]["img_per_s"] < 0.9 * f[0]["img_per_s"]:
                bad.append(f"{dim}D {prec}: {a[0]['img_per_s']:.1f} img/s slower than fp32 {f[0]['img_per_s']:.1f}")
    print("\nAMP/fp32 parity: " + ("ok" if not bad else "; ".join(bad)))
    sys.exit(1 if bad else 0)
PY
say "done"
