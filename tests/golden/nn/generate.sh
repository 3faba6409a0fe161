#!/usr/bin/env bash
# Regenerates the encoder golden files in a throwaway virtual environment on Debian's
# python3-torch 1.13 (apt-get install python3-torch), with a transformers release that
# supports it: no multi-GB CUDA download from PyPI.
#   tests/golden/nn/generate.sh [MINILM_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=${1:-${FLIPLESS_MODELS_DIR:-$HOME/.cache/flipless/models}/minilm-l6}
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q "transformers==4.36.2" "tokenizers==0.15.2" "safetensors==0.4.2"
"$venv/bin/python" "$here/generate.py" "$model"
