#!/usr/bin/env bash
# flipless against PyTorch eager + transformers (bench/vs_pytorch.py). Makes its own virtual
# environment once (bench/.venv: torch and transformers from PyPI, about 3 GB with the CUDA
# libraries PyPI's Linux torch wheel depends on; not a test dependency), builds the flipless
# worker, and runs the comparison on MiniLM-L6 and the 872 SST-2 dev sentences.
#   bench/vs_pytorch.sh [--rounds N] [--precisions fp32,bf16] [--skip-finetune] ...
set -euo pipefail
cd "$(dirname "$0")/.."
venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.15.0" "transformers==5.24.0"
fi
cmake --build build/release --target vs_pytorch_worker >/dev/null
model=$(build/release/flipless models list | awk '/^folder:/ {print $2}')/minilm-l6
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); date $(date -u +%Y-%m-%d); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
"$venv/bin/python" bench/vs_pytorch.py --worker build/release/bench/vs_pytorch_worker --model "$model" "$@"
