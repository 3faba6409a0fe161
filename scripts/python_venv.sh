#!/usr/bin/env bash
# Builds the Python package from this tree (`pip install .`: scikit-build-core + nanobind over
# the torch-free libraries) into the virtual environment build/python-venv, with the test and
# benchmark dependencies of python/requirements-dev.txt. Re-running rebuilds only what changed
# (the CMake build stays in build/python/). Needs what scripts/setup.sh installs.
#   scripts/python_venv.sh      then: build/python-venv/bin/python -c "import flipless"
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" -r python/requirements-dev.txt
# The baseline of the tests and benchmarks, never a dependency of the package: its score
# functions are plain Python, so its heavy dependencies (PyTorch) are left out.
"${pip[@]}" --no-deps backwardcompatibilityml==1.4.2
"${pip[@]}" --no-build-isolation .
