#!/usr/bin/env bash
# The one command a GPU machine runs, from the repository root, with the bundle `make gpu-bundle`
# built on a CPU machine: no network, no Swift, no compiler; this machine's own PyTorch (the
# python3 that imports torch; MEDSEG_PYTHON overrides). Checks doctor, every CUDA/GPU/NCCL test,
# a real training run and the benchmarks against PyTorch on the same GPU; writes report.md and
# report.json. Details: scripts/gpu_check.py.
# Usage: bash scripts/gpu-check.sh --bundle .gpu-bundle/medseg-gpu-bundle.tar.xz [--report DIR]
#        [--budget SECONDS] [--cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${MEDSEG_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3 /opt/torch/.venv/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import torch' >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "gpu-check: error: no python3 here imports torch (set MEDSEG_PYTHON)" >&2; exit 1; }
export MEDSEG_PYTHON="$python"
exec "$python" scripts/gpu_check.py "$@"
