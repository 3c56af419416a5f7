#!/usr/bin/env bash
# make gpu-bundle-check: the GPU bundle on this CPU machine, pointed at PyPI's torch in
# .deps/torch-cuda (the same libraries a GPU machine's torch has): the launcher refuses another
# torch in one line, the bundle runs in an empty environment, and the GPU check's steps run small
# on the CPU (doctor, the bundled test runner, train + predict, the benchmark pairs).
# Usage: bash scripts/gpu-bundle-check.sh [ARCHIVE]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
archive="${1:-.gpu-bundle/medseg-gpu-bundle.tar.xz}"
torch_dir="$root/.deps/torch-cuda/torch"
[ -f "$archive" ] || { echo "gpu-bundle-check: error: no $archive (make gpu-bundle builds it)" >&2; exit 1; }
[ -f "$torch_dir/version.py" ] || { echo "gpu-bundle-check: error: no torch in $torch_dir (make gpu-bundle installs it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xJf "$archive"
launcher="$work/medseg-gpu-bundle/medseg-gpu"
fail() { echo "gpu-bundle-check: FAILED: $*" >&2; exit 1; }

# Another torch: one line, exit 3, nothing run.
mkdir -p "$work/other/torch/lib"
printf "__version__ = '2.10.0+cu128'\ncuda: Optional[str] = '12.8'\n" > "$work/other/torch/version.py"
rc=0; out=$(MEDSEG_TORCH_DIR="$work/other/torch" "$launcher" doctor 2>&1) || rc=$?
[ "$rc" = 3 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ "$out" == *"built against PyTorch 2.11.0"*"2.10.0+cu128"* ]] \
  || fail "another torch must be refused in one line with exit 3, got exit $rc: $out"
echo "gpu-bundle-check: another torch is refused: $out"

# An empty environment (no LD_LIBRARY_PATH, no Swift on PATH): torch found through python3's path.
out=$(env -i PATH=/usr/bin:/bin HOME="$work" PYTHONPATH="$root/.deps/torch-cuda" "$launcher" doctor 2>&1) \
  || fail "doctor in an empty environment: $out"
grep -q "CUDA libtorch 2.11" <<<"$out" || fail "doctor does not report the CUDA libtorch: $out"
echo "gpu-bundle-check: doctor in an empty environment: $(grep '^engine' <<<"$out")"

# Every library the bundle's files load, outside glibc and libgcc, comes from the bundle or torch
# (a GPU machine has none of libtiff's or GDCM's dependencies), except lib/fallback's, which the
# launcher leaves to the machine's own copy where it has one.
libs=$(MEDSEG_TORCH_DIR="$torch_dir" "$launcher" --where | sed -n 's/^libraries //p')
base='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libutil|libresolv|libgcc_s|libstdc\+\+)\.so'
fallbacks=" $(ls "$work/medseg-gpu-bundle/lib/fallback" 2>/dev/null | tr '\n' ' ')"
for f in "$work"/medseg-gpu-bundle/bin/medseg "$work"/medseg-gpu-bundle/lib/*.so*; do
  while read -r name _ path _; do
    [[ "$name" =~ $base || "$fallbacks" == *" $name "* || "$path" == "$work"/* || "$path" == "$root/.deps/torch-cuda"/* ]] && continue
    # ldd says "statically linked" of a library that needs none (ICU's data library).
    [[ "$name" == /* || "$name" == linux-vdso* || "$name" == statically ]] && continue
    fail "$(basename "$f") loads $name from ${path:-nowhere}, outside the bundle and torch"
  done < <(LD_LIBRARY_PATH="$libs" ldd "$f" 2>/dev/null)
done
echo "gpu-bundle-check: every library resolves inside the bundle or torch"

# The GPU check's own steps, small, on the CPU.
# (Debian's python3 runs the PyTorch halves of the benchmark pairs.)
MEDSEG_TORCH_DIR="$torch_dir" /usr/bin/python3 scripts/gpu_check.py --bundle "$archive" --cpu --report "$root/runs/gpu-bundle-check"
