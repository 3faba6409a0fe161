#!/usr/bin/env bash
# The upgrade scenarios that run on a 2-core CPU, on bundled SST-2 (or another task given as
# TASK=mrpc): trains each model once, then compares old -> new on dev. The numbers in
# docs/scenarios.md come from this script.
#   scripts/scenarios.sh [OUT_DIR]          (default runs/scenarios; reruns reuse finished models)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/scenarios}
task=${TASK:-sst2}
seed=${SEED:-0}
bin=build/release/flipless
mkdir -p "$out"

train() {  # name, then flipless train options
  local name=$1; shift
  if [ -f "$out/$name/flipless_model.json" ]; then echo "== $name: done before"; return; fi
  echo "== $name"
  "$bin" train --task "$task" --seed "$seed" --out "$out/$name" "$@"
}

train fasttext            --model fasttext
train minilm-l2-frozen    --model minilm-l6 --frozen --layers 2 --epochs 10 --lr 1e-3 --batch-size 64
train minilm-l6-frozen    --model minilm-l6 --frozen --epochs 10 --lr 1e-3 --batch-size 64
train minilm-l6-finetuned --model minilm-l6 --max-train 3000 --epochs 2 --lr 5e-5 --batch-size 32 --max-length 64

# Compatibility methods for fastText -> frozen MiniLM-L6, against fastText's stored logits.
frozen=(--model minilm-l6 --frozen --epochs 10 --lr 1e-3 --batch-size 64 --old "$out/fasttext")
train minilm-l6-frozen-distillation      "${frozen[@]}" --method distillation
train minilm-l6-frozen-focal             "${frozen[@]}" --method focal_distillation
train minilm-l6-frozen-gf-lr2-1e-3       "${frozen[@]}" --method gated_fusion --gf-lr2 1e-3
train minilm-l6-frozen-gf-lr2-1e-4       "${frozen[@]}" --method gated_fusion --gf-lr2 1e-4
train minilm-l6-frozen-gf-lr2-1e-5       "${frozen[@]}" --method gated_fusion --gf-lr2 1e-5

compare() {  # old, new
  "$bin" compare "$out/$1/predictions/dev.jsonl" "$out/$2/predictions/dev.jsonl" --format json --out "$out/$1-to-$2.json" 2>/dev/null
  python3 - "$out/$1-to-$2.json" "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]
ci = lambda k: "[{:.2f}, {:.2f}]".format(*(100 * v for v in m[k]["ci95"]))
print("| {} -> {} | {:.2f} | {:.2f} | {:.2f} {} | {:.2f} | {:.3g} |".format(sys.argv[2], sys.argv[3], 100 * m["old_accuracy"]["value"],
      100 * m["new_accuracy"]["value"], 100 * m["nfr"]["value"], ci("nfr"), 100 * m["btc"]["value"], r["mcnemar_p"]))
PY
}
echo
echo "| upgrade ($task dev) | old acc | new acc | NFR % [95% CI] | BTC % | McNemar p |"
echo "|---|---:|---:|---:|---:|---:|"
compare fasttext minilm-l6-frozen
compare fasttext minilm-l6-finetuned
compare minilm-l2-frozen minilm-l6-frozen
compare minilm-l6-frozen minilm-l6-finetuned
for m in distillation focal gf-lr2-1e-3 gf-lr2-1e-4 gf-lr2-1e-5; do compare fasttext "minilm-l6-frozen-$m"; done
for kind in logit prob; do
  "$bin" ensemble "$out/fasttext" "$out/minilm-l6-frozen" --kind "$kind" --out "$out/minilm-l6-frozen-$kind-ensemble" >/dev/null
  compare fasttext "minilm-l6-frozen-$kind-ensemble"
done
