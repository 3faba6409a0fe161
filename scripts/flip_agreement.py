#!/usr/bin/env python3
"""Whether an upgrade run's negative flips are one new model's slips or what every new model gets wrong.

Methods that pull a new model toward other new models (the new-model ensemble, ELODI) can only
remove the flips on which the new models disagree. For each seed of TASK in RUN_DIR (a `flipless
experiment run` folder) it takes the vanilla model's negative flips on dev (its old model right,
it wrong) and counts, per flip, how many of the other new models of the folder are wrong there
too: the other seeds' vanilla models and the extra ensemble members (members/seed-N), read from
their logits.safetensors. It prints the share of flips by that count, and the old model's mean
confidence (its top softmax probability) on the flips and on the rows both models get right.

  scripts/flip_agreement.py RUN_DIR TASK [SPLIT]      (SPLIT: dev by default, or validation)
Standard library only.
"""
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from split_flips import read_logits  # noqa: E402  (a sibling script, not a package)


def seed_of(path):
    return int(path.name.split("-")[1])


def old_dir(task, seed_dir):
    """The old model of a seed's folder: old/seed-N with one old model per seed, else old/."""
    per_seed = task / "old" / seed_dir.name
    return per_seed if per_seed.exists() else task / "old"


def predictions(logits, split, names, where):
    """The predicted label of each row of SPLIT in a logits.safetensors file."""
    if split not in logits:
        raise SystemExit(f"flip_agreement.py: {where} has no {split} logits")
    rows, cols, values = logits[split]
    if cols != len(names):
        raise SystemExit(f"flip_agreement.py: {where}: {cols} logits a row, the task has {len(names)} labels")
    return [names[max(range(cols), key=lambda c: values[i * cols + c])] for i in range(rows)]


def confidence(row_logits):
    top = max(row_logits)
    total = sum(math.exp(x - top) for x in row_logits)
    return 1.0 / total


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    task = pathlib.Path(argv[1]) / argv[2]
    split = argv[3] if len(argv) == 4 else "dev"
    vanilla = sorted((p for p in (task / "vanilla").glob("seed-*") if (p / "logits.safetensors").exists()), key=seed_of)
    members = sorted((p for p in (task / "members").glob("seed-*") if (p / "logits.safetensors").exists()), key=seed_of)
    if len(vanilla) + len(members) < 2:
        print(f"flip_agreement.py: {task} needs at least two finished new models (vanilla/seed-N, members/seed-N)", file=sys.stderr)
        return 2
    names = json.loads((old_dir(task, (vanilla + members)[0]) / "result.json").read_text())["label_names"]
    new = {(d.parent.name, seed_of(d)): predictions(read_logits(d / "logits.safetensors"), split, names, d) for d in vanilla + members}
    others = len(new) - 1
    print(f"{split}: each vanilla model's negative flips, by how many of the {others} other new models are wrong there too")
    print(f"{'seed':>4} {'flips':>6} {'NFR':>7} " + " ".join(f"{k:>6}" for k in range(others + 1)) + f" {'old conf: flips':>16} {'both right':>10}")
    for seed_dir in vanilla:
        old = [json.loads(line) for line in (old_dir(task, seed_dir) / "predictions" / f"{split}.jsonl").open()]
        mine = new[("vanilla", seed_of(seed_dir))]
        if len(old) != len(mine):
            print(f"flip_agreement.py: {seed_dir}: {split} has {len(mine)} rows of logits, the old model {len(old)}", file=sys.stderr)
            return 2
        rest = [p for key, p in new.items() if key != ("vanilla", seed_of(seed_dir))]
        counts = [0] * (others + 1)
        conf = {"flips": [], "both right": []}
        for i, row in enumerate(old):
            if row["pred"] != row["label"]:
                continue
            if mine[i] == row["label"]:
                conf["both right"].append(confidence(row["logits"]))
                continue
            counts[sum(p[i] != row["label"] for p in rest)] += 1
            conf["flips"].append(confidence(row["logits"]))
        flips = sum(counts)
        shares = " ".join(f"{100 * c / flips:5.1f}%" if flips else f"{'-':>6}" for c in counts)
        means = [sum(v) / len(v) if v else float("nan") for v in (conf["flips"], conf["both right"])]
        print(f"{seed_of(seed_dir):>4} {flips:>6} {100 * flips / len(old):6.2f}% {shares} {means[0]:>16.3f} {means[1]:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
