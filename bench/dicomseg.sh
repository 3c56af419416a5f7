#!/usr/bin/env bash
# Writing a DICOM SEG of many segments (issue 34): `medseg data convert LABELS.nii.gz OUT.dcm
# --reference SERIES` against highdicom's Segmentation of the same label map and series, alternating.
# Both read the series' headers (highdicom its whole files, as it needs them) and write a binary SEG
# with a frame per slice and segment; MedSeg also reads the NIfTI label map, highdicom a .npy of it.
# Series: pydicom's fixture writer (scripts/fixtures/make_dicom_series.py), SIZE voxels; label map:
# SEGMENTS squares of 40 x 40 voxels over 30 slices each (bench/dicomseg_ref.py), kept in DIR.
# Usage: bash bench/dicomseg.sh [runs]   (default 2)
# env: SIZE=512,512,300 SEGMENTS=100 DIR=runs/bench-dicomseg MEDSEG=.build/release/medseg THREADS=2
# Target: MedSeg under 10 s on 2 cores for 100 segments on 512 x 512 x 300.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
size=${SIZE:-512,512,300}
segments=${SEGMENTS:-100}
dir=${DIR:-runs/bench-dicomseg}
medseg=${MEDSEG:-.build/release/medseg}
threads=${THREADS:-2}
[ -x "$medseg" ] || { echo "dicomseg.sh: no $medseg; build it: swift build -c release --product medseg" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "dicomseg.sh: /usr/bin/time (GNU time) is missing: it measures peak RSS" >&2; exit 1; }
/usr/bin/python3 -c "import highdicom" 2>/dev/null || { echo "dicomseg.sh: highdicom is missing for /usr/bin/python3: run scripts/setup.sh" >&2; exit 1; }
nibpy=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import nibabel, numpy" 2>/dev/null; then nibpy=$p; break; fi
done
[ -n "$nibpy" ] || { echo "dicomseg.sh: no python3 with nibabel and numpy" >&2; exit 1; }

mkdir -p "$dir"
stamp="$size $segments $(cksum < bench/dicomseg_ref.py | cut -d' ' -f1)"
if [ "$(cat "$dir/made" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$dir/series" "$dir"/*.nii.gz "$dir"/*.npy
  /usr/bin/python3 scripts/fixtures/make_dicom_series.py "$dir/series" --size "$size" > /dev/null
  "$medseg" data convert "$dir/series" "$dir/ct.nii.gz" > /dev/null
  "$nibpy" bench/dicomseg_ref.py labels "$dir/ct.nii.gz" "$segments" "$dir/labels.nii.gz" "$dir/labels.npy"
  echo "$stamp" > "$dir/made"
fi
cores=$(seq -s, 0 $((threads - 1)))

printf "%-10s%10s%14s%10s%12s\n" tool "wall s" "peak RSS MB" frames "file MB"
for ((r = 0; r < runs; r++)); do
  rm -f "$dir/medseg.dcm" "$dir/highdicom.dcm"
  log=$( { /usr/bin/time -f "%e %M" taskset -c "$cores" "$medseg" data convert "$dir/labels.nii.gz" "$dir/medseg.dcm" --reference "$dir/series" > /dev/null; } 2>&1 | tail -1)
  frames=$(/usr/bin/python3 -c "import pydicom, sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).NumberOfFrames)" "$dir/medseg.dcm")
  printf "%-10s%10.2f%14.0f%10s%12.1f\n" medseg "${log% *}" "$(( ${log#* } / 1024 ))" "$frames" "$(echo "$(stat -c %s "$dir/medseg.dcm") / 1048576" | bc -l)"
  out=$( { OMP_NUM_THREADS=$threads /usr/bin/time -f "%e %M" taskset -c "$cores" /usr/bin/python3 bench/dicomseg_ref.py highdicom "$dir/series" "$dir/labels.npy" "$segments" "$dir/highdicom.dcm"; } 2>&1)
  times=$(echo "$out" | tail -1)
  frames=$(echo "$out" | grep '^{' | /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['frames'])")
  printf "%-10s%10.2f%14.0f%10s%12.1f\n" highdicom "${times% *}" "$(( ${times#* } / 1024 ))" "$frames" "$(echo "$(stat -c %s "$dir/highdicom.dcm") / 1048576" | bc -l)"
done
