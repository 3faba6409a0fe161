#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes each reader for SECONDS
# (default 600), starting from the committed corpus. Findings land in tests/fuzz/findings/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tsv_fuzz csv_fuzz jsonl_fuzz predictions_fuzz safetensors_fuzz)
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLIPLESS_BUILD_FUZZ=ON \
  -DFLIPLESS_SANITIZE=address,undefined -DFLIPLESS_BUILD_BENCH=OFF -DFLIPLESS_WITH_TORCH=OFF >/dev/null
cmake --build build/fuzz --target "${targets[@]}"
mkdir -p tests/fuzz/findings
for t in "${targets[@]}"; do
  work=build/fuzz/corpus/$t
  mkdir -p "$work"
  cp -n tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  echo "== $t for ${seconds}s"
  start=$(date +%s)
  build/fuzz/tests/fuzz/$t "$work" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=tests/fuzz/findings/$t- -print_final_stats=1 2>&1 | tail -n 12
  echo "== $t: ran $(( $(date +%s) - start ))s, exit ${PIPESTATUS[0]}"
done
