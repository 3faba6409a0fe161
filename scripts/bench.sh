#!/usr/bin/env bash
# Runs the benchmarks in bench/ on a release build (serve_bench runs the demo first when its
# model is missing). Fetches BackwardCompatibilityML's wheel
# (pure Python, no dependencies needed for its score functions) to compare against.
#   scripts/bench.sh [--rows N] [--threads T]      (options go to encoder_bench)
# flipless against PyTorch + transformers is separate (a 2.4 GB virtual environment):
# bench/vs_pytorch.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bcml=build/bcml
if [ ! -d "$bcml/backwardcompatibilityml" ]; then
  mkdir -p "$bcml"
  python3 -m pip download -q --no-deps backwardcompatibilityml==1.4.2 -d "$bcml"
  (cd "$bcml" && python3 -m zipfile -e backwardcompatibilityml-1.4.2-py3-none-any.whl .)
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%d)"
echo
echo "== bench/blas_bench (the CPU math path: every OpenBLAS kernel side by side)"
build/release/flipless devices | sed -n '2,8p'
build/release/bench/blas_bench --rounds 3
echo
echo "== bench/compare_bench"
build/release/bench/compare_bench --bcml "$bcml"
# Hugging Face tokenizers, for the tokenizer side-by-side.
venv=build/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "tokenizers==0.15.2"
fi
echo
echo "== bench/encoder_bench"
build/release/bench/encoder_bench --tokenizers-python "$venv/bin/python" "$@"

echo
echo "== bench/python_metrics_bench.py"
scripts/python_venv.sh
build/python-venv/bin/python bench/python_metrics_bench.py

echo
echo "== bench/cache_bench"
# Real embeddings beside the synthetic ones: the largest cached MiniLM feature file, if any
# (SST-2 train after the demo or an experiment).
features=$(ls -S "$HOME"/.cache/flipless/features/minilm-l6-L6-mean-*.safetensors 2>/dev/null | head -1 || true)
build/release/bench/cache_bench ${features:+--features "$features"}

echo
echo "== bench/serve_bench"
[ -d runs/demo/sst2/gated_fusion/seed-0/model ] || build/release/flipless demo --out runs/demo >/dev/null
build/release/bench/serve_bench --model runs/demo/sst2/gated_fusion/seed-0/model
