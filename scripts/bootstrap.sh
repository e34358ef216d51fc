#!/usr/bin/env bash
# Installs the Debian packages bwla needs (when missing) and builds it in build/.
# Usage: scripts/bootstrap.sh [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="cmake ninja-build g++ pkg-config libeigen3-dev libopenblas-dev nlohmann-json3-dev
      libpcre2-dev libcli11-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev libplplot-dev plplot-driver-qt
      libdnnl-dev libcpp-httplib-dev"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# Node.js + npm run the tests of bwla serve with the official openai client;
# a Node.js already on the PATH (not from Debian) is kept.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
# -DBWLA_MPI=ON (mpirun -np N bwla quantize, docs/SCALING.md) needs Open MPI.
case " $* " in
  *" -DBWLA_MPI=ON "*)
    for p in libopenmpi-dev openmpi-bin; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done ;;
esac
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bootstrap: installing$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# BWLA_TARGETS (optional): build only these ninja targets.
ninja -C "$BUILD_DIR" -j"$(nproc)" ${BWLA_TARGETS:-}
