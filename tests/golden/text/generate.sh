#!/usr/bin/env bash
# Regenerates wordpiece_golden.json.gz with transformers + tokenizers in a throwaway virtual
# environment (Debian's python3 is enough: the tokenizer needs no torch).
#   tests/golden/text/generate.sh [MODEL_DIR] [GLUE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=${1:-${FLIPLESS_MODELS_DIR:-$HOME/.cache/flipless/models}/minilm-l6}
glue=${2:-$here/../../../../shared/data/glue}
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q "transformers==4.36.2" "tokenizers==0.15.2"
"$venv/bin/python" "$here/generate.py" "$model" "$glue" "$here/wordpiece_golden.json.gz"
