#!/usr/bin/env bash
# fastText -> frozen MiniLM-L6 on SST-2 over 5 seeds of the new model (the old fastText model is
# fixed, seed 0): vanilla, distillation, Gated Fusion (lr2 1e-5) and the old-new logit
# ensemble, with mean +- std of dev accuracy and NFR and the noise floor (NFR between two
# vanilla seeds). Needs scripts/scenarios.sh's fasttext run and cached features.
#   scripts/seeds.sh [OUT_DIR]            (default runs/scenarios)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/scenarios}
bin=build/release/flipless
common=(--model minilm-l6 --frozen --task sst2 --epochs 10 --lr 1e-3 --batch-size 64)
for seed in 0 1 2 3 4; do
  d=$out/seeds/$seed
  [ -f "$d/vanilla/flipless_model.json" ] || "$bin" train "${common[@]}" --seed "$seed" --out "$d/vanilla" >/dev/null 2>&1
  [ -f "$d/distillation/flipless_model.json" ] || "$bin" train "${common[@]}" --seed "$seed" --method distillation --old "$out/fasttext" --out "$d/distillation" >/dev/null 2>&1
  [ -f "$d/gated_fusion/flipless_model.json" ] || "$bin" train "${common[@]}" --seed "$seed" --method gated_fusion --gf-lr2 1e-5 --old "$out/fasttext" --out "$d/gated_fusion" >/dev/null 2>&1
  [ -f "$d/logit_ensemble/ensemble.json" ] || "$bin" ensemble "$out/fasttext" "$d/vanilla" --kind logit --out "$d/logit_ensemble" >/dev/null
  for m in vanilla distillation gated_fusion logit_ensemble; do
    "$bin" compare "$out/fasttext/predictions/dev.jsonl" "$d/$m/predictions/dev.jsonl" --format json --out "$d/$m/compare.json" 2>/dev/null
  done
done
"$bin" compare "$out/seeds/0/vanilla/predictions/dev.jsonl" "$out/seeds/1/vanilla/predictions/dev.jsonl" --format json --out "$out/seeds/noise.json" 2>/dev/null
python3 - "$out/seeds" <<'PY'
import json, statistics, sys
root = sys.argv[1]
def ms(v): return "{:.2f}±{:.2f}".format(100 * statistics.mean(v), 100 * statistics.stdev(v))
print("| method (5 seeds) | dev acc % | NFR % | relative NF reduction vs vanilla |")
print("|---|---:|---:|---:|")
base = None
for m in ["vanilla", "distillation", "gated_fusion", "logit_ensemble"]:
    r = [json.load(open(f"{root}/{s}/{m}/compare.json"))["metrics"] for s in range(5)]
    acc = [x["new_accuracy"]["value"] for x in r]; nfr = [x["nfr"]["value"] for x in r]
    base = base or statistics.mean(nfr)
    print(f"| {m} | {ms(acc)} | {ms(nfr)} | {100 * (base - statistics.mean(nfr)) / base:.1f}% |")
n = json.load(open(f"{root}/noise.json"))["metrics"]
print(f"\nnoise floor: NFR between vanilla seeds 0 and 1 = {100 * n['nfr']['value']:.2f}% (PFR {100 * n['pfr']['value']:.2f}%)")
PY
