"""scripts/split_flips.py on a hand-made run folder: two seeds, three splits of different rows,
new models whose predictions vary by row, so every rate printed is known."""
import json
import pathlib
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "split_flips.py"
NAMES = ["neg", "pos"]


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, rows in tensors.items():
        blob = b"".join(struct.pack("<%df" % len(r), *r) for r in rows)
        header[name] = {"dtype": "F32", "shape": [len(rows), len(rows[0])], "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def logits_for(preds):
    """Logits whose argmax is each row's prediction (by position in NAMES), with varied margins."""
    return [[1.0 + i, 0.5] if p == "neg" else [0.25, 2.0 + i] for i, p in enumerate(preds)]


# Per split: labels, old predictions, new predictions per seed. Rates per seed below.
SPLITS = {
    # 4 rows: old right on 0, 1; seed 0 new: right on 1, 2 -> NFR 1/4, PFR 1/4; seed 1 new: right on all -> NFR 0, PFR 2/4
    "train": (["neg", "pos", "pos", "neg"], ["neg", "pos", "neg", "pos"],
              {0: ["pos", "pos", "pos", "pos"], 1: ["neg", "pos", "pos", "neg"]}),
    # 2 rows: old right on both; seed 0 new wrong on both -> NFR 1, PFR 0; seed 1 new right on 0 -> NFR 1/2
    "validation": (["pos", "neg"], ["pos", "neg"], {0: ["neg", "pos"], 1: ["pos", "pos"]}),
    # 5 rows: old right on none; seed 0 new right on 3 -> PFR 3/5; seed 1 right on 1 -> PFR 1/5
    "dev": (["neg"] * 5, ["pos"] * 5, {0: ["neg", "neg", "neg", "pos", "pos"], 1: ["pos", "pos", "neg", "pos", "pos"]}),
}


class SplitFlips(unittest.TestCase):
    def run_folder(self, tmp, drop_old_row=False):
        task = pathlib.Path(tmp) / "mrpc"
        for seed in (0, 1):
            old = task / "old" / f"seed-{seed}"
            (old / "predictions").mkdir(parents=True)
            (old / "result.json").write_text(json.dumps({"label_names": NAMES}))
            tensors = {}
            for split, (labels, old_preds, new_preds) in SPLITS.items():
                rows = list(zip(labels, old_preds))
                if drop_old_row and split == "dev":
                    rows = rows[:-1]
                with (old / "predictions" / f"{split}.jsonl").open("w") as f:
                    for i, (label, pred) in enumerate(rows):
                        f.write(json.dumps({"id": f"{split}{i}", "label": label, "pred": pred}) + "\n")
                tensors[split] = logits_for(new_preds[seed])
            (task / "vanilla" / f"seed-{seed}").mkdir(parents=True)
            write_safetensors(task / "vanilla" / f"seed-{seed}" / "logits.safetensors", tensors)
        return pathlib.Path(tmp)

    def test_rates_per_seed_and_split_and_their_means(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, str(SCRIPT), str(self.run_folder(tmp)), "mrpc"],
                                 capture_output=True, text=True, check=True).stdout
            rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines()[1:]}
            # seed, split -> rows, old acc, new acc, NFR, PFR
            self.assertEqual(rows[("0", "train")], ["4", "50.00%", "50.00%", "25.00%", "25.00%"])
            self.assertEqual(rows[("1", "train")], ["4", "50.00%", "100.00%", "0.00%", "50.00%"])
            self.assertEqual(rows[("0", "validation")], ["2", "100.00%", "0.00%", "100.00%", "0.00%"])
            self.assertEqual(rows[("1", "validation")], ["2", "100.00%", "50.00%", "50.00%", "0.00%"])
            self.assertEqual(rows[("0", "dev")], ["5", "0.00%", "60.00%", "0.00%", "60.00%"])
            self.assertEqual(rows[("1", "dev")], ["5", "0.00%", "20.00%", "0.00%", "20.00%"])
            self.assertEqual(rows[("mean", "train")], ["50.00%", "75.00%", "12.50%", "37.50%"])
            self.assertEqual(rows[("mean", "validation")], ["100.00%", "25.00%", "75.00%", "0.00%"])
            self.assertEqual(rows[("mean", "dev")], ["0.00%", "40.00%", "0.00%", "40.00%"])

    def test_a_row_count_mismatch_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, str(SCRIPT), str(self.run_folder(tmp, drop_old_row=True)), "mrpc"],
                                  capture_output=True, text=True)
            self.assertEqual(done.returncode, 2)
            self.assertIn("dev has 5 rows of logits, the old model 4", done.stderr)


if __name__ == "__main__":
    unittest.main()
