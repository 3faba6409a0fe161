#!/usr/bin/env python3
"""Negative and positive flips of an upgrade run's vanilla models on every split, training rows included.

Gated Fusion trains its gate on the training rows in the last epoch; this shows what the gate
sees there against what it meets on held-out rows (validation, dev). For each seed of TASK in
RUN_DIR (a `flipless experiment run` folder with one old model per seed or one for all), it reads
the old model's predictions (old/[seed-N/]predictions/SPLIT.jsonl) and the vanilla model's logits
(vanilla/seed-N/logits.safetensors) and prints, per split, both accuracies, the negative flip
rate (old right, new wrong) and the positive flip rate (old wrong, new right).

  scripts/split_flips.py RUN_DIR TASK
Standard library only.
"""
import array
import json
import pathlib
import struct
import sys

SPLITS = ("train", "validation", "dev")


def read_logits(path):
    """The F32 tensors of a safetensors file, as (rows, cols, flat array)."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32" or len(info["shape"]) != 2:
            continue
        begin, end = info["data_offsets"]
        values = array.array("f")
        values.frombytes(data[8 + n + begin:8 + n + end])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = (info["shape"][0], info["shape"][1], values)
    return out


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    task = pathlib.Path(argv[1]) / argv[2]
    seeds = sorted((p for p in (task / "vanilla").glob("seed-*") if (p / "logits.safetensors").exists()),
                   key=lambda p: int(p.name.split("-")[1]))
    if not seeds:
        print(f"split_flips.py: no finished vanilla model under {task / 'vanilla'}", file=sys.stderr)
        return 2
    totals = {s: [0.0, 0.0, 0.0, 0.0] for s in SPLITS}
    print(f"{'seed':>4} {'split':>10} {'rows':>6} {'old acc':>8} {'new acc':>8} {'NFR':>7} {'PFR':>7}")
    for seed_dir in seeds:
        old_dir = task / "old" / seed_dir.name
        if not old_dir.exists():
            old_dir = task / "old"
        names = json.loads((old_dir / "result.json").read_text())["label_names"]
        logits = read_logits(seed_dir / "logits.safetensors")
        for split in SPLITS:
            old = [json.loads(line) for line in (old_dir / "predictions" / f"{split}.jsonl").open()]
            rows, cols, values = logits[split]
            if rows != len(old):
                print(f"split_flips.py: {seed_dir}: {split} has {rows} rows of logits, the old model {len(old)}", file=sys.stderr)
                return 2
            counts = [0, 0, 0, 0]  # old right, new right, negative flips, positive flips
            for i, row in enumerate(old):
                scores = values[i * cols:(i + 1) * cols]
                new_pred = names[max(range(cols), key=scores.__getitem__)]
                old_right, new_right = row["pred"] == row["label"], new_pred == row["label"]
                counts[0] += old_right
                counts[1] += new_right
                counts[2] += old_right and not new_right
                counts[3] += new_right and not old_right
            rates = [c / rows for c in counts]
            for k in range(4):
                totals[split][k] += rates[k] / len(seeds)
            print(f"{seed_dir.name[5:]:>4} {split:>10} {rows:>6} " + " ".join(f"{100 * r:7.2f}%" for r in rates))
    for split in SPLITS:
        print(f"{'mean':>4} {split:>10} {'':>6} " + " ".join(f"{100 * r:7.2f}%" for r in totals[split]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
