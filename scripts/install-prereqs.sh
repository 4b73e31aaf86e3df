#!/usr/bin/env bash
# install-prereqs.sh — the system packages float8 needs, on Debian 12/13 or Ubuntu,
# then Bun. The README's prerequisites line and .ci/run both run this script, so
# a new machine and CI install exactly the same things:
#   bash scripts/install-prereqs.sh        (uses sudo when not root)
#
# Every package the build needs is named here; nothing depends on apt's
# "recommends" (so --no-install-recommends is safe and used):
#   cmake g++ make        the build (CMake >= 3.25, C11/C++17, OpenMP comes with g++)
#   libdnnl-dev           oneDNN: CPU GEMMs and primitives
#   ocl-icd-opencl-dev    OpenCL headers + loader: Debian's dnnl-config.cmake calls
#                         find_package(OpenCL) and fails configure without them
#   libopenmpi-dev openmpi-bin   MPI collectives (libfp8_dist) and mpirun
set -euo pipefail

PACKAGES=(cmake g++ make libdnnl-dev ocl-icd-opencl-dev libopenmpi-dev openmpi-bin)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "install-prereqs: installed ${PACKAGES[*]}"

# Bun, from npm (any Bun >= 1.1 works; CI uses what npm resolves).
if ! command -v bun >/dev/null 2>&1; then
  if command -v npm >/dev/null 2>&1; then
    $SUDO npm install -g bun >/dev/null
  else
    echo "install-prereqs: Bun is missing and npm is not installed; see https://bun.sh for the installer" >&2
    exit 1
  fi
fi
echo "install-prereqs: $(bun --version | sed 's/^/bun /')"
