#!/usr/bin/env python3
"""Published experiment results, and the numbers quoted from them in RESULTS.md and README.md.

Every finished experiment's report is committed under results/<experiment>/ (report.json,
report.md and the experiment.yaml it ran), so every number quoted in the docs can be re-checked
without rerunning anything. The quoted tables live between markers the script owns:

    <!-- results:EXPERIMENT:TASK -->
    ...table rendered from results/EXPERIMENT/report.json...
    <!-- /results -->

  scripts/results.py publish RUN_DIR        copy RUN_DIR's report and config into results/NAME/
  scripts/results.py update                 re-render every marked block in RESULTS.md and README.md
  scripts/results.py check                  exit 1 when a marked block differs from its report (CI)
  scripts/results.py show EXPERIMENT TASK   print the block for one experiment and task
"""
import json
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
DOCS = [ROOT / "RESULTS.md", ROOT / "README.md"]
BLOCK = re.compile(r"(<!-- results:([\w.-]+):([\w.-]+) -->\n)(.*?)(<!-- /results -->)", re.S)

NAMES = {
    "vanilla": "new model (vanilla)",
    "distillation": "distillation",
    "focal_distillation": "focal distillation",
    "old_new_prob_ensemble": "old-new probs ensemble",
    "old_new_logit_ensemble": "old-new logits ensemble",
    "gated_fusion": "**Gated Fusion**",
    "gated_fusion_confidence": "GF + old/new confidence (flipless variant)",
    "gated_fusion_heldout": "GF, gate fit on held-out rows (flipless variant)",
    "bcwi": "BCWI",
    "elodi": "ELODI",
}


# The paper's tables 1 and 2 (../shared/paper/SPEC.md), NFR % and accuracy % (mean over 5 seeds),
# quoted beside the scenario that stands in for each: the same family made bigger (table 1,
# BERT-base -> BERT-large) and a different kind of model (table 2, BERT-base -> ELECTRA-base).
PAPER_OLD_ACCURACY = {"sst2": 92.00, "mrpc": 85.69, "qnli": 90.74}
PAPER = {
    "upgrade-minilm-l2-to-l6": ("table 1, BERT-base → BERT-large", {
        "vanilla": {"sst2": (2.18, 93.12), "mrpc": (4.12, 87.40), "qnli": (2.72, 92.22)},
        "distillation": {"sst2": (1.97, 93.33), "mrpc": (3.53, 87.70), "qnli": (2.31, 92.60)},
        "new_ensemble-5": {"sst2": (2.00, 93.30), "mrpc": (2.25, 88.87), "qnli": (1.98, 92.97)},
        "old_new_prob_ensemble": {"sst2": (1.06, 93.12), "mrpc": (1.67, 87.16), "qnli": (1.04, 92.44)},
        "old_new_logit_ensemble": {"sst2": (1.06, 93.12), "mrpc": (1.67, 87.16), "qnli": (1.04, 92.44)},
        "gated_fusion": {"sst2": (0.78, 93.05), "mrpc": (1.18, 87.45), "qnli": (0.73, 92.24)},
    }),
    "upgrade-fasttext-to-minilm": ("table 2, BERT-base → ELECTRA-base", {
        "vanilla": {"sst2": (1.63, 95.00), "mrpc": (3.73, 88.58), "qnli": (2.82, 92.90)},
        "distillation": {"sst2": (1.49, 95.02), "mrpc": (3.68, 88.82), "qnli": (2.58, 93.03)},
        "new_ensemble-5": {"sst2": (1.12, 95.39), "mrpc": (3.24, 89.02), "qnli": (2.26, 93.49)},
        "old_new_prob_ensemble": {"sst2": (1.40, 95.07), "mrpc": (3.14, 88.53), "qnli": (0.98, 93.04)},
        "old_new_logit_ensemble": {"sst2": (0.89, 94.95), "mrpc": (3.28, 88.48), "qnli": (0.98, 93.04)},
        "gated_fusion": {"sst2": (0.71, 95.02), "mrpc": (2.40, 88.68), "qnli": (0.81, 92.98)},
    }),
}


def paper_for(experiment):
    """The paper's table this experiment stands beside, or None."""
    return next((v for k, v in PAPER.items() if experiment.startswith(k)), None)


def pretty(folder):
    if folder in NAMES:
        return NAMES[folder]
    if folder.startswith("new_ensemble-"):
        return f"new-model ensemble ({folder[len('new_ensemble-'):]})"
    return folder


def mean_std(x):
    return f"{100 * x['mean']:.2f}±{100 * x['std']:.2f}"


def pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def render(experiment, task_name):
    path = RESULTS / experiment / "report.json"
    if not path.exists():
        raise SystemExit(f"results.py: {path} is missing (publish the run first)")
    report = json.loads(path.read_text())
    task = next((t for t in report["tasks"] if t["task"] == task_name), None)
    if task is None:
        raise SystemExit(f"results.py: {path}: no task '{task_name}'")
    lines = []
    seeds = report["seeds"]
    old = task.get("old_accuracy_per_model", [])
    if len(old) > 1:
        mean = sum(old) / len(old)
        std = (sum((a - mean) ** 2 for a in old) / (len(old) - 1)) ** 0.5
        lines.append(f"Old model {100 * mean:.2f}±{100 * std:.2f}% (one per seed); "
                     f"{report['units_finished']} of {report['units_planned']} units; seeds {', '.join(map(str, seeds))}; "
                     f"new models in {task.get('precision', 'fp32')}.")
    else:
        lines.append(f"Old model {100 * task.get('old_accuracy', 0):.2f}%; {report['units_finished']} of {report['units_planned']} units; "
                     f"seeds {', '.join(map(str, seeds))}; new models in {task.get('precision', 'fp32')}.")
    up = task.get("upgrade")
    if up:
        verdict = "an upgrade" if up["is_upgrade"] else "**not an upgrade**"
        lines.append(f"Upgrade check: vanilla {100 * up['new_accuracy']:.2f}% vs old {100 * up['old_accuracy']:.2f}%, "
                     f"{100 * up['gain']:+.2f} points: {verdict}.")
    paper = paper_for(experiment)
    if paper:
        table, rows = paper
        van = rows["vanilla"].get(task_name)
        lines.append(f"Beside the paper's {table} on {task_name.upper()} (its old model {PAPER_OLD_ACCURACY[task_name]:.2f}%): "
                     f"the last columns are its NFR and accuracy, and its NF reduction vs its vanilla.")
    lines.append("")
    header = "| method | seeds | NFR % | accuracy % | NF reduction vs vanilla | vs strongest baseline | NFR − vanilla [95% CI] |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if paper:
        header += " paper NFR % | paper acc % | paper NF reduction |"
        rule += "---:|---:|---:|"
    lines.append(header)
    lines.append(rule)
    for m in task["methods"]:
        if "not_applicable" in m:
            continue
        if m.get("seeds", 0) == 0:
            continue
        ci = m.get("nfr_minus_vanilla")
        ci_text = "–" if ci is None else f"{100 * ci['mean']:+.2f} [{100 * ci['lo']:+.2f}, {100 * ci['hi']:+.2f}]"
        row = (f"| {pretty(m['method'])} | {m['seeds']} | {mean_std(m['nfr'])} | {mean_std(m['accuracy'])} | "
               f"{pct(m.get('relative_nf_reduction_vs_vanilla'))} | {pct(m.get('relative_nf_reduction_vs_strongest_baseline'))} | {ci_text} |")
        if paper:
            theirs = paper[1].get(m["method"], {}).get(task_name)
            if theirs:
                reduction = "–" if m["method"] == "vanilla" or not van else f"{100 * (1 - theirs[0] / van[0]):.1f}%"
                row += f" {theirs[0]:.2f} | {theirs[1]:.2f} | {reduction} |"
            else:
                row += " – | – | – |"
        lines.append(row)
    for c in task.get("claims", []):
        rv, rs = c.get("relative_reduction_vs_vanilla"), c.get("relative_reduction_vs_strongest")
        def interval(r):
            return "–" if r is None else f"{100 * r['value']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"
        ok = lambda b: "met" if b else "not met"
        lines.append("")
        lines.append(f"Claims for {pretty(c['method'])}: removes ≥ 70% of vanilla's flips at accuracy ≥ vanilla − 0.2 "
                     f"({interval(rv)}, accuracy {100 * c['accuracy_change_vs_vanilla']:+.2f}): {ok(c['removes_70_percent_at_par'])}; "
                     f"≥ 30% fewer than the strongest baseline, {pretty(c.get('strongest_baseline', '–'))} ({interval(rs)}): "
                     f"{ok(c['30_percent_fewer_than_strongest'])}; interval vs vanilla excludes 0: {ok(c['interval_vs_vanilla_excludes_0'])}; "
                     f"vs the strongest: {ok(c['interval_vs_strongest_excludes_0'])}.")
    routing = task.get("gate_routing")
    if routing is None and task.get("gate_regression_auc"):  # reports written before variants had routing
        routing = {"gated_fusion": {"by_category": task.get("gate_by_category", {}), "regression_auc": task["gate_regression_auc"]}}
    for method, g in (routing or {}).items():
        auc = g.get("regression_auc")
        if not auc:
            continue
        lines.append("")
        by = ", ".join(f"{k} {v['mean_gate']:.3f}" for k, v in g.get("by_category", {}).items() if v.get("examples"))
        who = "" if method == "gated_fusion" else f" of {pretty(method)}"
        lines.append(f"Gate routing{who}: mean gate (1 = new model) by category: {by}; AUC of the gate separating vanilla's "
                     f"flips from the rest {auc['mean']:.3f}±{auc['std']:.3f}.")
    # Table 5 per gated method: "cache_experiments" by folder; reports written before variants had
    # one carry the paper's Gated Fusion alone as "cache_experiment".
    caches = task.get("cache_experiments") or ({"gated_fusion": task["cache_experiment"]} if task.get("cache_experiment") else {})
    names = [("neighbour", "nearest (paper)"), ("new_on_miss", "new alone"), ("tuned_distance", "tuned distance"), ("emulator", "emulator")]
    vanilla = next((m for m in task["methods"] if m["method"] == "vanilla"), None)
    for method, cache in caches.items():
        partial = [row for row in cache if 0 < row["percent"] < 100]
        full = next((m for m in task["methods"] if m["method"] == method), None)
        if not partial or not full or not vanilla:
            continue
        who = "full Gated Fusion" if method == "gated_fusion" else f"full {pretty(method)}"
        v, g = vanilla["nfr"]["mean"], full["nfr"]["mean"]
        lines.append("")
        if any(row.get("full_reduction_unclear") or row.get("gated_fusion_reduction_unclear") for row in partial) or v - g <= 0:
            nfrs = "; ".join(f"{row['percent']:g}% cached: " + ", ".join(f"{label} {100 * row[p]['nfr']:.2f}%" for p, label in names if p in row)
                             for row in partial)
            lines.append(f"Partial cache (table 5): {who}'s NFR ({100 * g:.2f}%) is not clearly below vanilla's "
                         f"({100 * v:.2f}%), so shares of its reduction are not computed; NFR by policy: {nfrs}.")
            continue
        parts = []
        for row in partial:
            shares = ", ".join(f"{label} {100 * (v - row[p]['nfr']) / (v - g):.0f}%" for p, label in names if p in row)
            parts.append(f"{row['percent']:g}% cached: {shares}")
        lines.append(f"Partial cache (table 5), share of {who}'s NF reduction kept by what the inputs not cached get: "
                     + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def blocks(text):
    return BLOCK.finditer(text)


def update(check):
    bad = 0
    for doc in DOCS:
        if not doc.exists():
            continue
        text = doc.read_text()
        def replace(m):
            nonlocal bad
            fresh = render(m.group(2), m.group(3))
            if fresh != m.group(4):
                bad += 1
                if check:
                    print(f"{doc.name}: block results:{m.group(2)}:{m.group(3)} differs from results/{m.group(2)}/report.json", file=sys.stderr)
            return m.group(1) + fresh + m.group(5)
        new = BLOCK.sub(replace, text)
        if not check and new != text:
            doc.write_text(new)
            print(f"results.py: updated {doc.name}")
    if check:
        count = sum(len(list(blocks(d.read_text()))) for d in DOCS if d.exists())
        print(f"results.py: {count - bad} of {count} quoted result blocks match their reports")
    return 1 if (check and bad) else 0


def publish(run_dir):
    run = pathlib.Path(run_dir)
    report = run / "report" / "report.json"
    config = run / "experiment.yaml"
    for p in (report, config):
        if not p.exists():
            raise SystemExit(f"results.py: {p} is missing (run `flipless experiment report {run}` first)")
    name = json.loads(report.read_text())["experiment"]
    out = RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report, out / "report.json")
    shutil.copyfile(run / "report" / "report.md", out / "report.md")
    shutil.copyfile(config, out / "experiment.yaml")
    print(f"results.py: {run} -> {out.relative_to(ROOT)}")


def main(argv):
    if len(argv) >= 2 and argv[1] == "publish" and len(argv) == 3:
        publish(argv[2])
        return 0
    if len(argv) == 2 and argv[1] in ("update", "check"):
        return update(argv[1] == "check")
    if len(argv) == 4 and argv[1] == "show":
        sys.stdout.write(render(argv[2], argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
