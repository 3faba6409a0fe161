#!/usr/bin/env bash
# Regenerates golden.json in a throwaway virtual environment with BackwardCompatibilityML
# (installed without its heavy dependencies: its score functions are plain Python) and SciPy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-deps backwardcompatibilityml==1.4.2
"$venv/bin/pip" install -q scipy==1.11.4 numpy==1.26.4
"$venv/bin/python" "$here/generate.py" "$here/golden.json"
echo "wrote $here/golden.json"
