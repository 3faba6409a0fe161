#!/usr/bin/env python3
"""Published experiment results, and the numbers quoted from them in RESULTS.md and README.md.

Every finished experiment's report is committed under results/<experiment>/ (report.json,
report.md and the experiment.yaml it ran), so every number quoted in the docs can be re-checked
without rerunning anything. The quoted tables live between markers the script owns:

    <!-- results:EXPERIMENT:TASK -->
    ...table rendered from results/EXPERIMENT/report.json...
    <!-- /results -->

and `<!-- results:summary:upgrades -->`: one row per results/upgrade-* experiment and task.

  scripts/results.py publish RUN_DIR [AS]   copy RUN_DIR's report and config into results/NAME/, or into
                                            results/AS/ (a rerun of a published experiment, kept beside it)
  scripts/results.py update                 re-render every marked block in RESULTS.md and README.md
  scripts/results.py check                  exit 1 when a marked block differs from its report (CI)
  scripts/results.py show EXPERIMENT TASK   print the block for one experiment and task
  scripts/results.py show summary upgrades  print the summary across the upgrade experiments
  scripts/results.py seconds [EXPERIMENT|DIR...]  wall time per unit and method (reports since
                                            2026-12-02 carry it), for planning the runs left
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
    "gated_fusion_gate_lr": "GF, gate at its own learning rate (flipless variant)",
    "gated_fusion_heldout": "GF, gate fit on held-out rows (flipless variant)",
    "bcwi": "BCWI",
    "elodi": "ELODI",
}


def pretty(folder):
    if folder in NAMES:
        return NAMES[folder]
    if folder.startswith("new_ensemble-"):
        return f"new-model ensemble ({folder[len('new_ensemble-'):]})"
    return folder


def mean_std(x):
    return f"{100 * x['mean']:.2f}±{100 * x['std']:.2f}"


def accuracy_change(method):
    """Accuracy minus vanilla's, in points: the report's (same seeds), or "–" (vanilla; reports before it had one)."""
    change = method.get("accuracy_change_vs_vanilla")
    return "–" if change is None else f"{100 * change:+.2f}"


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
    # The config's reference (the paper's table for the pair the scenario stands in for), as the
    # report carries it: its numbers per method beside ours.
    ref = task.get("reference")
    if ref:
        old_ref = f" (its old model {100 * ref['old_accuracy']:.2f}%)" if "old_accuracy" in ref else ""
        lines.append(f"Beside {ref['label']}{old_ref}: the last columns are its NFR, accuracy and NF reduction vs its vanilla.")
    lines.append("")
    header = "| method | seeds | NFR % | accuracy % | NF reduction vs vanilla | vs strongest baseline | NFR − vanilla [95% CI] | accuracy − vanilla |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if ref:
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
               f"{pct(m.get('relative_nf_reduction_vs_vanilla'))} | {pct(m.get('relative_nf_reduction_vs_strongest_baseline'))} | {ci_text} | "
               f"{accuracy_change(m)} |")
        if ref:
            theirs = m.get("reference")
            row += (f" {100 * theirs['nfr']:.2f} | {100 * theirs['accuracy']:.2f} | {pct(theirs.get('relative_nf_reduction_vs_vanilla'))} |"
                    if theirs else " – | – | – |")
        lines.append(row)
    # Which baseline the "vs strongest" column compares with (reports since 2026-12-03 say; earlier
    # ones took the lowest NFR whatever its accuracy).
    sb = task.get("strongest_baseline")
    if isinstance(sb, dict):
        aside = ", ".join(f"{pretty(a['method'])} ({100 * a['accuracy_change_vs_vanilla']:+.2f} points)" for a in sb.get("set_aside", []))
        band = f"{100 * sb['accuracy_band']:g} point"
        if sb.get("outside_band"):
            why = f"the lowest mean NFR of all the baselines, since none is within {band} of vanilla's accuracy: {aside}"
        else:
            why = f"the lowest mean NFR among the baselines at most {band} less accurate than vanilla" + (f"; set aside for accuracy: {aside}" if aside else "")
        lines.append("")
        lines.append(f"Strongest baseline: {pretty(sb['method'])}, {why}.")
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
        drift = ""
        if g.get("weight_change"):
            w, o, spread = g["weight_change"], g["output_change"], g["output_change_spread"]
            drift = (f"; training moved its weight matrices {100 * w['mean']:.2f}% from their random initialisation and its value on "
                     f"dev by {o['mean']:.3f} on average (spread over inputs {spread['mean']:.3f})")
        lines.append(f"Gate routing{who}: mean gate (1 = new model) by category: {by}; AUC of the gate separating vanilla's "
                     f"flips from the rest {auc['mean']:.3f}±{auc['std']:.3f}{drift}.")
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


def render_summary(kind):
    """One row per experiment x task of results/upgrade-* (named by its folder, so a rerun kept beside
    its experiment has a row of its own): the accuracy gap beside what each family of methods
    removes, sorted by the gap (the paper's pairs are 1-3 points apart)."""
    if kind != "upgrades":
        raise SystemExit(f"results.py: unknown summary '{kind}' (known: upgrades)")
    rows = []
    for path in sorted(RESULTS.glob("upgrade-*/report.json")):
        report = json.loads(path.read_text())
        for task in report["tasks"]:
            up = task.get("upgrade")
            methods = {m["method"]: m for m in task["methods"] if m.get("seeds", 0) > 0 and "not_applicable" not in m}
            if not up or "vanilla" not in methods:
                continue
            claims = {c["method"]: c for c in task.get("claims", [])}
            auc = (task.get("gate_routing") or {}).get("gated_fusion", {}).get("regression_auc")
            def reduction(name):
                c = claims.get(name)
                r = c and c.get("relative_reduction_vs_vanilla")
                if not r:
                    return "–"
                return f"{100 * r['value']:.0f}% [{100 * r['lo']:.0f}, {100 * r['hi']:.0f}] ({methods[name]['seeds']})"
            strongest = next((c["strongest_baseline"] for c in task.get("claims", []) if c.get("strongest_baseline")), None)
            strong = (f"{pretty(strongest)} {pct(methods[strongest].get('relative_nf_reduction_vs_vanilla'))}"
                      if strongest in methods else "–")
            paper = (methods.get("gated_fusion") or {}).get("reference") or {}
            auc_text = "–" if not auc else f"{auc['mean']:.2f}"
            rows.append((up["gain"], f"| {path.parent.name.removeprefix('upgrade-')} | {task['task']} | {100 * up['old_accuracy']:.1f} | "
                         f"{100 * up['new_accuracy']:.1f} | {100 * up['gain']:+.1f} | {mean_std(methods['vanilla']['nfr'])} | {strong} | "
                         f"{reduction('gated_fusion')} | {auc_text} | {reduction('gated_fusion_heldout')} | "
                         f"{pct(paper.get('relative_nf_reduction_vs_vanilla'))} |"))
    lines = ["| experiment | task | old acc % | new acc % | gain (points) | vanilla NFR % | strongest baseline: NF reduction | "
             "Gated Fusion: NF reduction [95% CI] (seeds) | its gate's flip AUC | held-out gate: NF reduction [95% CI] (seeds) | "
             "paper's GF reduction |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    lines += [row for _, row in sorted(rows, key=lambda r: r[0])]
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
            fresh = render_summary(m.group(3)) if m.group(2) == "summary" else render(m.group(2), m.group(3))
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


def publish(run_dir, as_name=None):
    """Copies the run's report and config to results/<its experiment's name>/, or to results/AS/:
    a second run of a published experiment (another machine, more methods) is kept beside the
    first, whose numbers the docs quote, rather than replacing it. AS begins with the
    experiment's name, so the two sort and read together."""
    run = pathlib.Path(run_dir)
    report = run / "report" / "report.json"
    config = run / "experiment.yaml"
    for p in (report, config):
        if not p.exists():
            raise SystemExit(f"results.py: {p} is missing (run `flipless experiment report {run}` first)")
    name = json.loads(report.read_text())["experiment"]
    if as_name is not None:
        if not re.fullmatch(r"[\w.-]+", as_name) or not as_name.startswith(name + "-"):
            raise SystemExit(f"results.py: publish as '{as_name}': the name must begin with the experiment's, '{name}-', "
                             "and hold only letters, digits, '.', '_' and '-'")
        name = as_name
    out = RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report, out / "report.json")
    shutil.copyfile(run / "report" / "report.md", out / "report.md")
    shutil.copyfile(config, out / "experiment.yaml")
    print(f"results.py: {run} -> {out.relative_to(RESULTS.parent)}")


def seconds(names):
    """Per experiment and task: the math the new models ran in, then per method the units
    finished, mean and range of seconds per unit, and the total; the old models the same, shown
    but not added to the total: each was trained inside the unit that first needed it (or inside
    a unit of the run folder it was linked from), so its time is already in that unit's. A
    unit's time includes the models it trained on the way (a vanilla model first needed by an
    ensemble or by Gated Fusion's warm-up is trained inside that unit, and the vanilla unit then
    only predicts); models linked in from another run folder cost it nothing. Reports since
    2026-12-02 also say the CPU threads each unit ran on: a row then names them, and core-hours
    are seconds x threads (a unit whose threads were not recorded counts as one thread)."""
    dirs = [pathlib.Path(n) if pathlib.Path(n).is_dir() else RESULTS / n for n in names] if names else \
        sorted(p for p in RESULTS.iterdir() if (p / "report.json").exists())
    lines, total, core, any_threads = [], 0.0, 0.0, False
    for d in dirs:
        path = d / "report.json"
        if not path.exists():
            raise SystemExit(f"results.py: {path} is missing")
        report = json.loads(path.read_text())
        label = d.name if d.parent == RESULTS else report["experiment"]  # a rerun published beside its experiment
        for task in report["tasks"]:
            # (name, seconds, threads, counted): the old models are shown but not counted, being
            # trained inside the units that first needed them
            rows = [("old models", task.get("seconds", {}).get("old_models", []), task.get("threads", {}).get("old_models", []), False)]
            rows += [(m["method"], m.get("seconds", []), m.get("threads", []), True) for m in task["methods"]]
            if not any(s for _, s, _, _ in rows):
                lines.append(f"{label} {task['task']}: no wall times in its report (published before 2026-12-02)")
                continue
            lines.append(f"{label} {task['task']} (new models in {task.get('precision', '?')}):")
            for name, secs, threads, counted in rows:
                if not secs:
                    continue
                threads = list(threads) + [None] * (len(secs) - len(threads))
                if counted:
                    total += sum(secs)
                    core += sum(s * (t or 1) for s, t in zip(secs, threads))
                line = (f"  {name:<28} {len(secs):>2} units  {sum(secs) / len(secs):>8.0f} s/unit "
                        f"({min(secs):.0f}-{max(secs):.0f})  total {sum(secs) / 3600:6.2f} h")
                known = sorted({t for t in threads if t is not None})
                if known:
                    any_threads = True
                    line += "  threads " + ("-".join(str(t) for t in (known[0], known[-1])) if len(known) > 1 else str(known[0]))
                    if None in threads:
                        line += " (some not recorded)"
                lines.append(line)
    if any_threads:
        lines.append(f"all: {total / 3600:.2f} h of wall time, {core / 3600:.2f} core-hours "
                     "(seconds x threads; a unit whose threads were not recorded counts as one; "
                     "the old models are inside the units)")
    else:
        lines.append(f"all: {total / 3600:.2f} h of wall time (core-hours for one-thread runs; "
                     "the old models are inside the units)")
    print("\n".join(lines))


def main(argv):
    if len(argv) >= 2 and argv[1] == "publish" and len(argv) in (3, 4):
        publish(argv[2], argv[3] if len(argv) == 4 else None)
        return 0
    if len(argv) == 2 and argv[1] in ("update", "check"):
        return update(argv[1] == "check")
    if len(argv) >= 2 and argv[1] == "seconds":
        seconds(argv[2:])
        return 0
    if len(argv) == 4 and argv[1] == "show":
        sys.stdout.write(render_summary(argv[3]) if argv[2] == "summary" else render(argv[2], argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
