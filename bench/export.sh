#!/usr/bin/env bash
# `medseg predict` of one CT-like case with an nnU-Net v2 model folder of many classes, the case at another
# spacing than the plans' (issue 31, item 2): wall time and peak resident memory in total and per stage
# (read, preprocess, network, export, write; the lines `[case ID ]stage NAME: S.SS s, peak RSS N MB` medseg
# prints under MEDSEG_STAGE_TIMINGS=1, where it has them), and with NNUNET=1 nnU-Net's own prediction of the same
# folder (nnUNetv2_predict_from_modelfolder), its masks compared voxel by voxel with MedSeg's.
# Model: 3d_fullres, plans spacing 2.5 x 0.8 x 0.8 mm (z, y, x), CT normalization, a small PlainConvUNet of
# random weights (the network is not what is measured), no mirroring (the checkpoint allows none and both
# tools are told so). Case: int16, SIZE voxels (x, y, z) at 0.7 x 0.7 x 1.25 mm. Model and case are made
# by bench/export_ref.py and kept in DIR for the next run (remade when CLASSES, PATCH, FEATURES, SIZE or the
# helper change).
# Usage: bash bench/export.sh [threads]   (default 2)
# env: SIZE=512x512x300 CLASSES=101 (with background) PATCH=40,160,160 (z,y,x) FEATURES=4,8,16,32
#      DIR=runs/bench-export MEDSEG=.build/release/medseg MEDSEG_ARGS (more predict options, e.g. --accumulate float16) NNUNET=0 NNUNET_PYTHON=/usr/bin/python3 NNUNET_FP32=0
#      LIMIT_MB (a run whose process tree passes it is stopped; default 90% of the memory available at start)
# Targets (2 threads, 101 classes, 512x512x300): peak memory < 4 GB, export < 60 s, and with nnU-Net at
# least 5x faster end to end at equal masks.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
size=${SIZE:-512x512x300}
classes=${CLASSES:-101}
patch=${PATCH:-40,160,160}
features=${FEATURES:-4,8,16,32}
dir=${DIR:-runs/bench-export}
nnpy=${NNUNET_PYTHON:-/usr/bin/python3}
ref=bench/export_ref.py
source bench/common.sh

mkdir -p "$dir"
version=$(cksum < $ref | cut -d" " -f1)   # a changed helper remakes model and case
model=$dir/Dataset900_BenchExport/nnUNetTrainer__nnUNetPlans__3d_fullres
if [ "$(cat "$dir/model.stamp" 2>/dev/null)" != "$classes $patch $features $version" ]; then
  rm -rf "$model"
  /usr/bin/python3 $ref model "$model" "$classes" "$patch" "$features"
  echo "$classes $patch $features $version" > "$dir/model.stamp"
fi
if [ "$(cat "$dir/image.stamp" 2>/dev/null)" != "$size $version" ]; then
  rm -rf "$dir/imagesTs"
  "$nibpy" $ref image "$dir/imagesTs/case_0000.nii.gz" "$size"
  echo "$size $version" > "$dir/image.stamp"
fi

# MedSeg: /usr/bin/time -v gives the process's peak RSS, export_ref.py run the process tree's peak PSS (and the limit).
rm -rf "$dir/out-medseg" "$dir/out-nnunet" "$dir"/*.json "$dir"/*.time "$dir"/*.log
echo "medseg predict: $size, $classes classes, $threads threads ..." >&2
MEDSEG_STAGE_TIMINGS=1 /usr/bin/python3 $ref run "$limit" "$dir/medseg.json" -- /usr/bin/time -v -o "$dir/medseg.time" \
  "$medseg" predict --run "$model" --input "$dir/imagesTs" --out "$dir/out-medseg" --threads "$threads" --no-mirror ${MEDSEG_ARGS:-} \
  > "$dir/medseg.log" 2>&1 || echo "medseg predict failed: $dir/medseg.log" >&2

# nnU-Net, where this machine's Python runs its predictor. It uses all cores (torch.set_num_threads(cpu_count())),
# and spawns worker processes: /usr/bin/time -v reports the largest single process, the tree PSS their sum
# (shared pages, such as torch's libraries, counted once).
if [ "${NNUNET:-0}" = 1 ]; then
  if ! "$nnpy" -c "import nnunetv2.inference.predict_from_raw_data" > "$dir/nnunet.log" 2>&1; then
    echo "nnU-Net skipped: $nnpy cannot import nnunetv2's predictor ($(tail -n 1 "$dir/nnunet.log"))" >&2
  else
    echo "nnUNetv2_predict_from_modelfolder ..." >&2
    # nnU-Net sums the windows' logits in float16 (predicted_logits, n_predictions), which flips near-tied voxels;
    # NNUNET_FP32=1 makes those sums float32 (torch.half read as float32 while its predictor runs) for the mask check.
    fp32=""
    [ "${NNUNET_FP32:-0}" = 1 ] && fp32="torch.half = torch.float32;"
    mkdir -p "$dir/nnUNet_raw" "$dir/nnUNet_preprocessed"
    nnUNet_raw=$dir/nnUNet_raw nnUNet_preprocessed=$dir/nnUNet_preprocessed nnUNet_results=$dir OMP_NUM_THREADS=$threads \
      /usr/bin/python3 $ref run "$limit" "$dir/nnunet.json" -- /usr/bin/time -v -o "$dir/nnunet.time" \
      "$nnpy" -c "import torch; $fp32 from nnunetv2.inference.predict_from_raw_data import predict_entry_point_modelfolder as m; m()" \
      -i "$dir/imagesTs" -o "$dir/out-nnunet" -m "$model" -f 0 -chk checkpoint_final.pth -device cpu --disable_tta \
      -npp 1 -nps 1 --disable_progress_bar > "$dir/nnunet.log" 2>&1 || echo "nnU-Net failed: $dir/nnunet.log" >&2
  fi
fi

labels=""
[ -f "$dir/out-medseg/case.nii.gz" ] && labels=$("$nibpy" $ref compare "$dir/out-medseg/case.nii.gz")
agree=""
[ -f "$dir/out-medseg/case.nii.gz" ] && [ -f "$dir/out-nnunet/case.nii.gz" ] \
  && agree=$("$nibpy" $ref compare "$dir/out-medseg/case.nii.gz" "$dir/out-nnunet/case.nii.gz")

/usr/bin/python3 - "$dir" "$size" "$classes" "$patch" "$features" "$threads" "$(nproc)" "$limit" "$labels" "$agree" <<'PY'
import json, math, os, re, sys
d, size, classes, patch, features, threads, cores, limit, labels, agree = sys.argv[1:]
nx, ny, nz = (int(v) for v in size.split("x"))
pz, py, px = (int(v) for v in patch.split(","))
# nnU-Net's resampled shape (round(shape * spacing / plan spacing)) and its window count at step 0.5.
shape = [round(nz * 1.25 / 2.5), round(ny * 0.7 / 0.8), round(nx * 0.7 / 0.8)]
windows = math.prod(1 if n <= p else math.ceil((n - p) / (p / 2)) + 1 for n, p in zip(shape, (pz, py, px)))
print(f"\ncase {size} (x, y, z) at 0.7 x 0.7 x 1.25 mm -> plans' 2.5 x 0.8 x 0.8 mm: {shape[0]} x {shape[1]} x {shape[2]} (z, y, x), "
      f"{windows} windows of {pz} x {py} x {px}; {classes} classes; features {features}; mirroring off; {cores} cores\n")

def load(tool):
    r = {}
    if os.path.exists(f"{d}/{tool}.json"):
        r.update(json.load(open(f"{d}/{tool}.json")))
    if os.path.exists(f"{d}/{tool}.time"):
        t = open(f"{d}/{tool}.time").read()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
        r["maxrss_mb"] = int(m.group(1)) / 1024 if m else None
        m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t)
        r["wall_s"] = sum(float(v) * 60 ** i for i, v in enumerate(reversed(m.group(1).split(":")))) if m else r.get("wall_s")
    log = open(f"{d}/{tool}.log").read() if os.path.exists(f"{d}/{tool}.log") else ""
    r["stages"] = {m.group(1): (float(m.group(2)), int(m.group(3)))
                   for m in re.finditer(r"stage (\w+): ([\d.]+) s, peak RSS (\d+) MB", log)}
    return r

rows = [("MedSeg", threads, load("medseg"))]
if os.path.exists(f"{d}/nnunet.json"):
    rows.append(("nnU-Net" + (" (fp32 sums)" if os.environ.get("NNUNET_FP32") == "1" else ""), f"{cores} (all)", load("nnunet")))
la = json.loads(labels) if labels else {}
ag = json.loads(agree) if agree else {}
f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
print(f"{'tool':<21} {'threads':>8} {'rc':>4} {'wall s':>8} {'peak RSS MB':>12} {'tree PSS MB':>12} {'labels':>7} {'equal to MedSeg':>16}")
for name, t, r in rows:
    rc = "limit" if r.get("killed_at_limit") else r.get("rc")
    lab = la.get("labels_a") if name == "MedSeg" else ag.get("labels_b")
    eq = "-" if name == "MedSeg" else (f"{ag['equal']:.6f}" if ag.get("equal") is not None else ag.get("why", "-"))
    print(f"{name:<21} {t:>8} {str(rc):>4} {f(r.get('wall_s')):>8} {f(r.get('maxrss_mb'), 0):>12} {f(r.get('tree_pss_mb'), 0):>12} "
          f"{'-' if lab is None else lab:>7} {eq:>16}")
if any(r["killed_at_limit"] for _, _, r in rows if "killed_at_limit" in r):
    print(f"(limit: a process tree above {limit} MB PSS was stopped; set LIMIT_MB to change it)")
stages = rows[0][2]["stages"]
if stages:
    print(f"\n{'MedSeg stage':<12} {'s':>8} {'peak RSS MB':>12}")
    for name in ("read", "preprocess", "network", "export", "write"):
        s, m = stages.get(name, (None, None))
        print(f"{name:<12} {f(s, 2):>8} {'-' if m is None else m:>12}")
    print("(peak RSS of a stage: the process's peak up to when medseg printed that line)")
else:
    print("\n(no per-stage lines: this medseg does not print `stage NAME: S.SS s, peak RSS N MB` under MEDSEG_STAGE_TIMINGS=1)")
# Targets of issue 31 (meant for 2 threads, 101 classes, 512 x 512 x 300).
ours = rows[0][2]
if ours.get("rc") == 0:
    peak = max(v for v in (ours.get("maxrss_mb"), ours.get("tree_pss_mb")) if v is not None)
    checks = [f"peak {peak:.0f} MB {'<' if peak < 4000 else '>='} 4000 MB"]
    if "export" in stages:
        checks.append(f"export {stages['export'][0]:.1f} s {'<' if stages['export'][0] < 60 else '>='} 60 s")
    if len(rows) > 1 and rows[1][2].get("rc") == 0:
        checks.append(f"nnU-Net / MedSeg wall {rows[1][2]['wall_s'] / ours['wall_s']:.2f}x (target >= 5x)")
    print("\ntargets: " + "; ".join(checks))
PY
