#!/usr/bin/env bash
# Installs the cuBLASLt / CUDA runtime / NCCL wheels into .deps/ (ignored by git),
# where CMake looks for them. Uses the package indexes pip is configured with:
# the first configured index becomes --index-url, the rest --extra-index-url,
# so pip never waits on an unreachable default index.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=$(command -v pip || command -v pip3)
urls=$($PIP config list 2>/dev/null | sed -n "s/^[a-z:.-]*index-url='\(.*\)'$/\1/p" | tr ' ' '\n' | grep -v '^$' || true)
args=()
first=1
for u in $urls; do
  if [ $first -eq 1 ]; then args+=(--index-url "$u"); first=0; else args+=(--extra-index-url "$u"); fi
done
compgen -G ".deps/cuda/nvidia_cublas-*.dist-info" >/dev/null || $PIP install -q --no-deps --target .deps/cuda "${args[@]}" nvidia-cublas nvidia-cuda-runtime
compgen -G ".deps/nccl/nvidia_nccl*.dist-info" >/dev/null || $PIP install -q --no-deps --target .deps/nccl "${args[@]}" nvidia-nccl-cu13
