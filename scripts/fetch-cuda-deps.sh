#!/usr/bin/env bash
# Installs the cuBLASLt / CUDA runtime / NCCL wheels into .deps/ (ignored by git),
# where CMake looks for them (libfp8_cuda, libfp8_dist_nccl).
set -euo pipefail
cd "$(dirname "$0")/.."
compgen -G ".deps/cuda/nvidia_cublas-*.dist-info" >/dev/null ||
  bash scripts/pip-install.sh --no-deps --target .deps/cuda nvidia-cublas nvidia-cuda-runtime
compgen -G ".deps/nccl/nvidia_nccl*.dist-info" >/dev/null ||
  bash scripts/pip-install.sh --no-deps --target .deps/nccl nvidia-nccl-cu13
