#!/usr/bin/env bash
# Installs PyPI's CUDA torch wheel (torch==MEDSEG_TORCH_VERSION, default 2.11.0, with the nvidia-*
# runtime wheels it pulls, ~4.6 GB) into TARGET (default .deps/torch-cuda), plus the CUDA crt/cccl
# headers that CUDA 13's wheels leave out and NCCL's process-group headers need. Quick when done.
# Used by the set-up (MEDSEG_ENGINE=cuda) and by make gpu-bundle.
# Usage: torch-cuda.sh [--dry-run] [TARGET]; --dry-run prints the steps it would take and installs nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dry_run=0
[ "${1:-}" = "--dry-run" ] && { dry_run=1; shift; }
target="${1:-$root/.deps/torch-cuda}"
torch_version="${MEDSEG_TORCH_VERSION:-2.11.0}"

# The Version of the first installed distribution NAME-*.dist-info in TARGET, or nothing. A glob
# that matches no file (a fresh target) must give nothing, not fail the script under set -e.
dist_version() {
  local metadata
  for metadata in "$target"/"$1"-*.dist-info/METADATA; do
    [ -f "$metadata" ] && { sed -n 's/^Version: //p' "$metadata" | sed -n 1p; return 0; }
  done
  return 0
}

needs_torch() {
  local installed
  installed=$(dist_version torch)
  [ ! -f "$target/torch/lib/libtorch_cuda.so" ] || [ "${installed%%+*}" != "$torch_version" ]
}
needs_headers() {
  [ -n "$(dist_version cuda_toolkit)" ] && [ ! -f "$target/nvidia/cu13/include/crt/host_defines.h" ]
}

if [ "$dry_run" = 1 ]; then
  if needs_torch; then echo "torch-cuda: would install torch==$torch_version into $target"
  elif needs_headers; then echo "torch-cuda: would add the CUDA $(dist_version cuda_toolkit) crt/cccl headers to $target"
  else echo "torch-cuda: $target is complete (torch $(dist_version torch))"; fi
  exit 0
fi

if needs_torch; then
  echo "torch-cuda: installing PyPI torch==$torch_version (CUDA, ~4.6 GB) into $target"
  rm -rf "$target" && mkdir -p "$target"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$target" "torch==$torch_version" \
    || { echo "torch-cuda: error: pip could not install torch==$torch_version into $target" >&2; exit 1; }
fi
if [ ! -f "$target/torch/lib/libtorch_cuda.so" ]; then
  echo "torch-cuda: error: $target/torch has no lib/libtorch_cuda.so (not a CUDA wheel?)" >&2; exit 1
fi
# CUDA 13's wheels ship cuda_runtime_api.h without crt/ and nv/ (nvidia-cuda-crt and
# nvidia-cuda-cccl, of the toolkit version torch pulls). pip --target would replace the whole
# nvidia/ folder, so they go to a temporary folder first.
if needs_headers; then
  toolkit=$(dist_version cuda_toolkit)
  echo "torch-cuda: adding the CUDA $toolkit crt/cccl headers to $target"
  tmp=$(mktemp -d)
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --no-deps --target "$tmp" \
    $(sed -n "s/^Requires-Dist: \(nvidia-cuda-c\(rt\|ccl\)==[^;]*\);.*extra == '\(crt\|cccl\)'.*/\1/p" "$target"/cuda_toolkit-*.dist-info/METADATA | tr -d '*' | sed 's/\.$//') \
    || { echo "torch-cuda: error: could not install the CUDA crt/cccl headers" >&2; exit 1; }
  cp -rn "$tmp"/. "$target"/ && rm -rf "$tmp"
fi
