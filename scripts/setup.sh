#!/usr/bin/env bash
# Installs what MedSeg needs from Debian's packages; quick and silent when everything is there.
set -euo pipefail

packages=(
  libtorch-dev          # the compute engine (libtorch 1.13, CPU)
  libgloo-dev           # collectives on CPU for distributed training
  libopenblas0-pthread  # fast BLAS (the reference BLAS is ~28x slower)
  zlib1g-dev libpng-dev libjpeg-dev libtiff-dev  # image codecs
  python3-torch         # PyTorch, only for reference tests and benchmarks
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Reference packages for the tests (PyPI): read back what MedSeg writes with the tools users have.
python_packages=(tensorboard safetensors nibabel pynrrd pillow tifffile)
python_modules=(tensorboard safetensors nibabel nrrd PIL tifffile)
missing_py=()
for i in "${!python_packages[@]}"; do
  if ! python3 -c "import ${python_modules[$i]}" >/dev/null 2>&1; then missing_py+=("${python_packages[$i]}"); fi
done
if ((${#missing_py[@]})); then
  echo "setup: installing Python reference packages ${missing_py[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${missing_py[@]}" \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing_py[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: error: the Swift toolchain (swift) is not on PATH" >&2
  exit 1
fi
