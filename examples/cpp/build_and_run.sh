#!/usr/bin/env bash
# Build the C++ DCDM consumer against the torch wheel's libtorch, export the shipped 2D model, run the
# plume and the closed-box pressure solves, and check both answers against Python (rtol 1e-6).
#
#   examples/cpp/build_and_run.sh [BUILD_DIR]      (PYTHON=... to pick the interpreter)
#
# BUILD_DIR: a relative path is taken from the directory you call the script from; without it, build/cpp
# in the repository root. Needs cmake (>= 3.18) and a C++20 compiler. Exit status 0 when the C++ program
# converged and agrees with Python.
set -euo pipefail
BUILD=build/cpp  # relative to the repository root (the cd below)
if [ $# -ge 1 ]; then
  case "$1" in
    /*) BUILD=$1 ;;
    *) BUILD="$PWD/$1" ;;  # resolved against the caller's directory, before the cd below
  esac
fi
PYTHON=${PYTHON:-python}
case "$PYTHON" in
  /*) ;;
  */*) PYTHON="$PWD/$PYTHON" ;;  # a relative path to an interpreter, from the caller's directory too
esac
cd "$(dirname "$0")/../.."
for tool in cmake c++; do
  if ! command -v "$tool" >/dev/null; then
    echo "build_and_run.sh: '$tool' not found: install cmake (>= 3.18) and a C++20 compiler" >&2
    exit 2
  fi
done
# the ABI flag first: `read` gives the last name the rest of the line, so a folder with spaces stays whole
read -r abi root < <("$PYTHON" -c 'import os, torch; print("ON" if torch.compiled_with_cxx11_abi() else "OFF", os.path.dirname(torch.__file__))')
cmake -S examples/cpp -B "$BUILD" -DTORCH_ROOT="$root" -DTORCH_CXX11_ABI="$abi" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j 2
"$PYTHON" examples/cpp/check_cpp.py --exe "$BUILD/pressure_solve" --work "$BUILD"
