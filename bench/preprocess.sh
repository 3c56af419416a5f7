#!/usr/bin/env bash
# `medseg plan` and `medseg preprocess --workers N` of CASES CT-sized cases (issue 31, item 3): wall time, time
# per case, CPU time per case and peak memory of each, and with NNUNET=1 nnU-Net's own nnUNetv2_plan_and_preprocess
# of the same raw data set (-c 3d_fullres -np N -npfp N), run as its two halves (--no_pp: fingerprint and plans;
# then nnUNetv2_preprocess) so that each lines up with MedSeg's command.
# Cases (bench/preprocess_ref.py): int16, 512 x 512 x Z, Z from 200 to 400 spread over the cases, 0.6..0.9 mm in
# plane and 1.0..3.0 mm along z, an elliptic body of soft tissue in air (-1000 HU), labels liver, kidneys, spleen;
# written once as an nnU-Net v2 raw data set and kept in DIR (remade when CASES or the helper change).
# Usage: bash bench/preprocess.sh [workers]   (default $THREADS or 2)
# env: CASES=20 THREADS=2 DIR=runs/bench-preprocess MEDSEG=.build/release/medseg NNUNET=0
#      NNUNET_PYTHON=/tmp/nnunet-venv/bin/python
#      LIMIT_MB (a run whose process tree passes it is stopped; default 90% of the memory available at start)
# Memory: MedSeg holds one case per worker (the peak should not grow with CASES); nnU-Net likewise one case per
# process, plus its fingerprint's 10^8 foreground samples in the main process.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-${THREADS:-2}}
cases=${CASES:-20}
dir=${DIR:-runs/bench-preprocess}
nnpy=${NNUNET_PYTHON:-/tmp/nnunet-venv/bin/python}
ref=bench/preprocess_ref.py
source bench/common.sh

# One raw data set for both tools: nnU-Net finds it under nnUNet_raw by its id; MedSeg reads a folder of its own
# that links to the same images and labels, so that its plans.json, fingerprint and preprocessed/ stay apart.
raw=$dir/nnUNet_raw/Dataset931_BenchPreprocess
mkdir -p "$dir"
version=$(cat $ref bench/export_ref.py | cksum | cut -d" " -f1)
if [ "$(cat "$dir/data.stamp" 2>/dev/null)" != "$cases $version" ]; then
  rm -rf "$raw" "$dir/medseg-raw"
  echo "making $cases cases in $raw ..." >&2
  "$nibpy" $ref data "$raw" "$cases" "$workers"
  echo "$cases $version" > "$dir/data.stamp"
fi
rm -rf "$dir/medseg-raw" "$dir/nnUNet_preprocessed" "$dir/nnUNet_results" "$dir"/*.json "$dir"/*.time "$dir"/*.log
mkdir -p "$dir/medseg-raw"
cp "$raw/dataset.json" "$dir/medseg-raw/"
ln -s "$(cd "$raw" && pwd)/imagesTr" "$dir/medseg-raw/imagesTr"
ln -s "$(cd "$raw" && pwd)/labelsTr" "$dir/medseg-raw/labelsTr"
load=$(cut -d" " -f1-3 /proc/loadavg)
# CPU time of the whole machine over the runs (/proc/stat), to tell how much other processes took.
stat0=$(head -n 1 /proc/stat); start=$(date +%s.%N)

# Each step under /usr/bin/time -v (peak RSS of the largest process, CPU time of the tree) and export_ref.py's
# sampler (peak PSS of the process tree, and the memory limit).
step() {  # name command...
  local name=$1; shift
  /usr/bin/python3 $ref run "$limit" "$dir/$name.json" -- /usr/bin/time -v -o "$dir/$name.time" "$@" > "$dir/$name.log" 2>&1 \
    || echo "$name failed: $dir/$name.log" >&2
}
echo "medseg plan + preprocess: $cases cases, $workers workers ..." >&2
step medseg-plan "$medseg" plan "$dir/medseg-raw" --workers "$workers"
step medseg-preprocess "$medseg" preprocess "$dir/medseg-raw" --config 3d_fullres --workers "$workers"

# nnU-Net, where its Python runs. Its workers are processes (spawned); each gets one thread, as each MedSeg worker is one.
if [ "${NNUNET:-0}" = 1 ]; then
  if ! "$nnpy" -c "import nnunetv2.experiment_planning.plan_and_preprocess_entrypoints" > "$dir/nnunet-plan.log" 2>&1; then
    echo "nnU-Net skipped: $nnpy cannot import nnunetv2 ($(tail -n 1 "$dir/nnunet-plan.log"))" >&2
  else
    echo "nnUNetv2_plan_and_preprocess: $cases cases, -np $workers -npfp $workers ..." >&2
    mkdir -p "$dir/nnUNet_preprocessed" "$dir/nnUNet_results"
    export nnUNet_raw=$dir/nnUNet_raw nnUNet_preprocessed=$dir/nnUNet_preprocessed nnUNet_results=$dir/nnUNet_results
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
    entry=nnunetv2.experiment_planning.plan_and_preprocess_entrypoints
    step nnunet-plan "$nnpy" -c "from $entry import plan_and_preprocess_entry as m; m()" \
      -d 931 -c 3d_fullres -np "$workers" -npfp "$workers" --no_pp
    step nnunet-preprocess "$nnpy" -c "from $entry import preprocess_entry as m; m()" -d 931 -c 3d_fullres -np "$workers"
    unset nnUNet_raw nnUNet_preprocessed nnUNet_results OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS
  fi
fi

shapes=""
[ -d "$dir/nnUNet_preprocessed/Dataset931_BenchPreprocess/nnUNetPlans_3d_fullres" ] \
  && shapes=$("$nnpy" $ref shapes "$dir/medseg-raw/preprocessed/3d_fullres" "$dir/nnUNet_preprocessed/Dataset931_BenchPreprocess/nnUNetPlans_3d_fullres" 2>/dev/null || true)

stat1=$(head -n 1 /proc/stat); end=$(date +%s.%N)
/usr/bin/python3 - "$dir" "$cases" "$workers" "$(nproc)" "$limit" "$load" "$(cut -d" " -f1-3 /proc/loadavg)" "$shapes" \
  "$stat0" "$stat1" "$start" "$end" "$(getconf CLK_TCK)" <<'PY'
import json, os, re, sys
d, cases, workers, cores, limit, load0, load1, shapes, stat0, stat1, start, end, tck = sys.argv[1:]
cases = int(cases)
# Busy CPU seconds of the machine (user, nice, system, irq, softirq, steal) over the runs.
busy = lambda line: sum(int(v) for i, v in enumerate(line.split()[1:9]) if i not in (3, 4)) / int(tck)
machine_cpu, elapsed = busy(stat1) - busy(stat0), float(end) - float(start)

def load(step):
    r = {}
    if os.path.exists(f"{d}/{step}.json"):
        r.update(json.load(open(f"{d}/{step}.json")))
    if os.path.exists(f"{d}/{step}.time"):
        t = open(f"{d}/{step}.time").read()
        num = lambda pat: float(m.group(1)) if (m := re.search(pat, t)) else None
        r["maxrss_mb"] = (num(r"Maximum resident set size \(kbytes\): (\d+)") or 0) / 1024 or None
        u, s = num(r"User time \(seconds\): ([\d.]+)"), num(r"System time \(seconds\): ([\d.]+)")
        r["cpu_s"] = u + s if u is not None and s is not None else None
    return r

fp = f"{d}/medseg-raw/dataset_fingerprint.json"
if os.path.exists(fp):
    f = json.load(open(fp))
    z = [s[0] for s in f["spacings"]]
    slices = [s[0] for s in f["shapes_after_crop"]]
    print(f"\n{cases} cases, 512 x 512 x {min(slices)}..{max(slices)} int16 ({sum(slices) * 512 * 512 / 1e9:.2f} G voxels), "
          f"z spacing {min(z):g}..{max(z):g} mm; {workers} workers; {cores} cores; load {load0} before, {load1} after\n")
plans = f"{d}/medseg-raw/plans.json"
theirs = f"{d}/nnUNet_preprocessed/Dataset931_BenchPreprocess/nnUNetPlans.json"
for name, path in (("MedSeg", plans), ("nnU-Net", theirs)):
    if os.path.exists(path):
        c = json.load(open(path))["configurations"].get("3d_fullres", {})
        print(f"{name:<8} 3d_fullres spacing {[round(v, 4) for v in c.get('spacing', [])]}, patch {c.get('patch_size')}")

f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
print(f"\n{'tool':<8} {'step':<11} {'rc':>5} {'wall s':>8} {'s/case':>7} {'CPU s/case':>11} {'peak RSS MB':>12} {'tree PSS MB':>12}")
for tool, prefix in (("MedSeg", "medseg"), ("nnU-Net", "nnunet")):
    for step in ("plan", "preprocess"):
        r = load(f"{prefix}-{step}")
        if not r:
            continue
        rc = "limit" if r.get("killed_at_limit") else r.get("rc")
        wall, cpu = r.get("wall_s"), r.get("cpu_s")
        print(f"{tool:<8} {step:<11} {str(rc):>5} {f(wall):>8} {f(wall and wall / cases, 2):>7} {f(cpu and cpu / cases, 2):>11} "
              f"{f(r.get('maxrss_mb'), 0):>12} {f(r.get('tree_pss_mb'), 0):>12}")
ours = sum(load(f"{p}-{s}").get("cpu_s") or 0 for p in ("medseg", "nnunet") for s in ("plan", "preprocess"))
print(f"\nother processes used {max(0.0, machine_cpu - ours) / elapsed:.2f} of the {cores} cores on average over these {elapsed:.0f} s "
      f"(machine busy {machine_cpu / elapsed:.2f} cores, the runs above {ours / elapsed:.2f})")
print("(s/case: wall time over the cases with all workers; CPU s/case: user + system time of the process tree over the cases;"
      "\n peak RSS: the largest single process; tree PSS: the process tree's sum, sampled every 0.1 s)")
if shapes:
    s = json.loads(shapes)
    print(f"\npreprocessed shapes equal to nnU-Net's: {s['same_shape']} of {s['cases']} cases" + (f"; differ: {s['differ']}" if s["differ"] else ""))
PY
