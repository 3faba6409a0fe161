#!/usr/bin/env bash
# The test suite, as CI runs it: set-up, a warnings-as-errors release build with every public
# header compiled on its own, all tests, the install + consumer check, the Python package (built
# with pip, tested with pytest), then an ASan + UBSan build of the libraries and their tests.
#   scripts/test.sh             (slower checks have labels of their own: see README)
set -euo pipefail
cd "$(dirname "$0")/.."
FLIPLESS_CMAKE_ARGS="-DFLIPLESS_WERROR=ON -DCMAKE_VERIFY_INTERFACE_HEADER_SETS=ON" scripts/setup.sh
cmake --build build/release --target all_verify_interface_header_sets
jobs=$(nproc)

echo "== release build: tests"
ctest --test-dir build/release --output-on-failure -j "$jobs"

echo "== install and build a consumer project against it"
tests/install/check.sh build/release

echo "== Python package: pip install . into build/python-venv, then pytest"
scripts/python_venv.sh
FLIPLESS_CLI="$PWD/build/release/flipless" build/python-venv/bin/python -m pytest -q -p no:cacheprovider python/tests

echo "== ASan + UBSan build of the torch-free libraries: tests"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLIPLESS_SANITIZE=address,undefined \
  -DFLIPLESS_WERROR=ON -DFLIPLESS_BUILD_BENCH=OFF -DFLIPLESS_WITH_TORCH=OFF >/dev/null
cmake --build build/asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs"
