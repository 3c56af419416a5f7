#!/usr/bin/env bash
# Installs what MedSeg needs from Debian's packages; quick and silent when everything is there.
#   scripts/setup.sh            everything the tests need (make test, make bench)
#   scripts/setup.sh --runtime  only what building and running medseg needs (make demo, users)
#   --print-plan                prints what would be ensured (packages, Python modules, extras), installs nothing
set -euo pipefail

runtime=0
print_plan=0
for arg in "$@"; do
  case "$arg" in
    --runtime) runtime=1 ;;
    --print-plan) print_plan=1 ;;
    *) echo "setup: error: unknown option '$arg' (--runtime, --print-plan)" >&2; exit 2 ;;
  esac
done

packages=(
  libtorch-dev          # the compute engine (libtorch 1.13, CPU)
  libgloo-dev           # collectives on CPU for distributed training
  libopenblas0-pthread  # fast BLAS (the reference BLAS is ~28x slower)
  zlib1g-dev libpng-dev libjpeg-dev libtiff-dev libgif-dev  # image codecs
  libgdcm-dev           # DICOM series (GDCM)
  libdcmtk-dev          # DICOM Segmentation objects (DCMTK's dcmseg)
)
# Only the tests and benchmarks use these: references to compare with, fixture writers, a cluster.
test_packages=(
  python3-torch         # PyTorch, only for reference tests and benchmarks
  python3-scipy         # scipy beside it, for MONAI's surface Dice (reference tests)
  dcm2niix python3-pydicom  # DICOM reference converter and fixture writer
  python3-torchvision   # beside Debian's torch: timm, which Primus's reference builds on, imports it
  orthanc orthanc-dicomweb  # a real PACS with DICOMweb, which the tests start on ports of their own
  libcurl4-openssl-dev  # the GPU bundle links Foundation's networking (DICOMweb) statically, which needs libcurl
)
python_packages=(tensorboard safetensors nibabel pynrrd pillow tifffile scipy)
python_modules=(tensorboard safetensors nibabel nrrd PIL tifffile scipy)
# timm: the EVA blocks and rotary embedding of dynamic_network_architectures' Primus (its pin: < 1.0.23).
reference_packages=(nnunetv2 dynamic_network_architectures "monai==1.3.2" einops "timm<1.0.23")
# Readers of the DICOM SEG MedSeg writes: highdicom (0.22, the last for Debian's pydicom 2.3),
# dicom3tools' dciodvfy (validator) and dcmqi's segimage2itkimage (converter), both as binaries.
# rt-utils fills RT Structure Set contours back into masks, with OpenCV (before 4.11: Debian's numpy 1.24).
dicom_seg_packages=(highdicom==0.22.0 pillow-jpls dicom3tools dcmqi rt-utils "opencv-python-headless<4.11")
((runtime)) || packages+=("${test_packages[@]}")

if ((print_plan)); then
  echo "debian: ${packages[*]}"
  if ((runtime)); then
    echo "python: none"
    echo "extras: none"
  else
    echo "python: ${python_packages[*]} ${reference_packages[*]} onnxruntime onnx ${dicom_seg_packages[*]}"
    echo "extras: slurm munge nvrtc monai-1.6-mednext"
  fi
  exit 0
fi

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

if ((!runtime)); then
  # SLURM and MUNGE for the srun tests, which start a private cluster of their own (never the
  # packages' services): scripts/slurm/.
  bash "$(dirname "$0")/slurm/install.sh"

  # Reference packages for the tests (PyPI): read back what MedSeg writes with the tools users have.
  missing_py=()
  for i in "${!python_packages[@]}"; do
    if ! python3 -c "import ${python_modules[$i]}" >/dev/null 2>&1; then missing_py+=("${python_packages[$i]}"); fi
  done
  if ((${#missing_py[@]})); then
    echo "setup: installing Python reference packages ${missing_py[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${missing_py[@]}" \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing_py[@]}"
  fi
  # nnU-Net's own planner, losses and networks and MONAI's metrics for the parity tests, beside Debian's
  # torch (the tests run them with /usr/bin/python3); --no-deps, so that no second torch is pulled.
  if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c "import nnunetv2, dynamic_network_architectures, monai, einops, timm" >/dev/null 2>&1; then
    echo "setup: installing nnunetv2, dynamic_network_architectures, monai, einops and timm (reference planner, losses, networks and metrics)"
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps "${reference_packages[@]}" \
      || /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --break-system-packages --no-deps "${reference_packages[@]}"
  fi
  # onnxruntime runs the ONNX files `medseg export` writes and onnx's checker checks them (with their
  # dependencies, beside Debian's torch). numpy stays the one installed: onnx's ml_dtypes would
  # otherwise pull numpy 2, which Debian's torch was not built for.
  if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c "import onnxruntime, onnx" >/dev/null 2>&1; then
    echo "setup: installing onnxruntime and onnx (run and check exported ONNX models in the tests)"
    numpy_pin="$(/usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)' 2>/dev/null || echo numpy)"
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check onnxruntime onnx "$numpy_pin" \
      || /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --break-system-packages onnxruntime onnx "$numpy_pin"
  fi
  # DICOM SEG references, beside Debian's pydicom 2.3 and numpy (--no-deps, so that pip leaves
  # them alone; highdicom 0.23+ needs pydicom 3). dciodvfy and segimage2itkimage land in pip's
  # script folder (/usr/local/bin as root, ~/.local/bin otherwise).
  if [ -x /usr/bin/python3 ] && { ! /usr/bin/python3 -c "import highdicom, PIL, rt_utils, cv2" >/dev/null 2>&1 \
      || ! command -v dciodvfy >/dev/null 2>&1 || ! command -v segimage2itkimage >/dev/null 2>&1; }; then
    echo "setup: installing highdicom, dicom3tools, dcmqi and rt-utils (read back the DICOM SEG and RTSTRUCT files MedSeg writes)"
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps pillow "${dicom_seg_packages[@]}" \
      || /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --break-system-packages --no-deps pillow "${dicom_seg_packages[@]}"
  fi
  # MONAI 1.6's MedNeXt, the reference of `--model mednext`: its two files, which need only torch,
  # taken from the wheel (MONAI 1.6 as a whole needs a newer torch than Debian's).
  mednext="$(cd "$(dirname "$0")/.." && pwd)/.deps/reference/monai-1.6.0"
  if [ ! -f "$mednext/monai/networks/blocks/mednext_block.py" ]; then
    echo "setup: fetching MONAI 1.6.0's MedNeXt into $mednext (reference for the MedNeXt tests)"
    wheel="$(mktemp -d)"
    if python3 -m pip download --quiet --disable-pip-version-check --no-deps monai==1.6.0 -d "$wheel"; then
      python3 -c 'import glob, sys, zipfile
z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
for name in ("monai/networks/nets/mednext.py", "monai/networks/blocks/mednext_block.py"):
    z.extract(name, sys.argv[2])' "$wheel" "$mednext"
    else
      echo "setup: warning: could not fetch MONAI 1.6.0; MedNeXtTests will fail" >&2
    fi
    rm -rf "$wheel"
  fi
fi

# The engine: Debian's CPU libtorch, or on a machine with an NVIDIA driver a CUDA libtorch from
# PyPI's torch wheel (Linux x86_64's default wheel is the CUDA one; it pulls the nvidia-* runtime
# wheels) installed into .deps/torch-cuda. MEDSEG_ENGINE=cpu|cuda overrides the detection.
# The choice goes to .deps/libtorch.env, which the Makefile reads (LIBTORCH, build path, why).
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
engine="${MEDSEG_ENGINE:-}"
reason="MEDSEG_ENGINE=$engine"
if [ -z "$engine" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    engine=cuda; reason="NVIDIA driver detected (nvidia-smi)"
  elif [ -e /proc/driver/nvidia/version ]; then
    engine=cuda; reason="NVIDIA driver detected (/proc/driver/nvidia/version)"
  else
    engine=cpu; reason="no NVIDIA driver"
  fi
fi
case "$engine" in
  cpu)
    env_text="$(printf 'MEDSEG_ENGINE := cpu\nMEDSEG_ENGINE_REASON := %s' "$reason")"
    ;;
  cuda)
    target="$deps/torch-cuda"
    bash "$root/scripts/torch-cuda.sh" "$target"
    # The runtime libraries of the nvidia-* wheels (Package.swift adds them to the rpath too).
    libs="$target/torch/lib"
    for d in "$target"/nvidia/*/lib; do [ -d "$d" ] && libs="$libs:$d"; done
    env_text="$(printf 'MEDSEG_ENGINE := cuda\nMEDSEG_ENGINE_REASON := %s\nLIBTORCH := %s\nMEDSEG_LD_LIBRARY_PATH := %s' \
      "$reason" "$target/torch" "$libs")"
    ;;
  *)
    echo "setup: error: MEDSEG_ENGINE must be cpu or cuda, not '$engine'" >&2; exit 1 ;;
esac
# NVRTC alone (PyPI's nvidia-cuda-nvrtc-cu12, the version torch==2.5.1 pulls, ~60 MB) on every
# machine that runs the tests: one compiles the selective scan's CUDA kernels to PTX with it, which needs no GPU.
nvrtc_version="${MEDSEG_NVRTC_VERSION:-12.4.127}"
if ((!runtime)) && [ ! -f "$deps/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
  echo "setup: fetching NVRTC $nvrtc_version into $deps/nvrtc (compiles the scan's CUDA kernels in a test)"
  mkdir -p "$deps"
  /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-warn-script-location \
    --target "$deps/nvrtc" "nvidia-cuda-nvrtc-cu12==$nvrtc_version" \
    || echo "setup: warning: could not fetch NVRTC; SelectiveScanTests.testNVRTCCompilesTheKernels will skip" >&2
fi
# Rewritten only when it changes: the Makefile includes it and restarts when it is remade.
mkdir -p "$deps"
if [ "$(cat "$deps/libtorch.env" 2>/dev/null)" != "$env_text" ]; then
  printf '%s\n' "$env_text" > "$deps/libtorch.env"
  echo "setup: engine $engine ($reason)"
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: error: the Swift toolchain (swift) is not on PATH" >&2
  exit 1
fi
