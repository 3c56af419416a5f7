#!/usr/bin/env bash
# Installs PyPI's CUDA torch wheel (torch==MEDSEG_TORCH_VERSION, default 2.11.0, with the nvidia-*
# runtime wheels it pulls, ~4.6 GB) into TARGET (default .deps/torch-cuda), plus the CUDA crt/cccl
# headers that CUDA 13's wheels leave out and NCCL's process-group headers need. Quick when done.
# Used by the set-up (MEDSEG_ENGINE=cuda) and by make gpu-bundle. Usage: torch-cuda.sh [TARGET]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:-$root/.deps/torch-cuda}"
torch_version="${MEDSEG_TORCH_VERSION:-2.11.0}"
installed=$(sed -n 's/^Version: //p' "$target"/torch-*.dist-info/METADATA 2>/dev/null | head -1)
if [ ! -f "$target/torch/lib/libtorch_cuda.so" ] || [ "${installed%%+*}" != "$torch_version" ]; then
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
toolkit=$(sed -n 's/^Version: //p' "$target"/cuda_toolkit-*.dist-info/METADATA 2>/dev/null | head -1)
if [ -n "$toolkit" ] && [ ! -f "$target/nvidia/cu13/include/crt/host_defines.h" ]; then
  echo "torch-cuda: adding the CUDA $toolkit crt/cccl headers to $target"
  tmp=$(mktemp -d)
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --no-deps --target "$tmp" \
    $(sed -n "s/^Requires-Dist: \(nvidia-cuda-c\(rt\|ccl\)==[^;]*\);.*extra == '\(crt\|cccl\)'.*/\1/p" "$target"/cuda_toolkit-*.dist-info/METADATA | tr -d '*' | sed 's/\.$//') \
    || { echo "torch-cuda: error: could not install the CUDA crt/cccl headers" >&2; exit 1; }
  cp -rn "$tmp"/. "$target"/ && rm -rf "$tmp"
fi
