"""scripts/split_flips.py on a hand-made run folder: four rows per split whose flips are known."""
import json
import pathlib
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "split_flips.py"


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, rows in tensors.items():
        blob = b"".join(struct.pack("<%df" % len(r), *r) for r in rows)
        header[name] = {"dtype": "F32", "shape": [len(rows), len(rows[0])], "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class SplitFlips(unittest.TestCase):
    def run_folder(self, tmp, old_rows=4):
        task = pathlib.Path(tmp) / "mrpc"
        old = task / "old" / "seed-0"
        (old / "predictions").mkdir(parents=True)
        (old / "result.json").write_text(json.dumps({"label_names": ["0", "1"]}))
        labels = ["0", "1", "1", "0"]
        old_preds = ["0", "1", "0", "1"]  # right, right, wrong, wrong
        # new: wrong on row 0 (a negative flip), right on row 2 (a positive flip), right on 1, wrong on 3
        new_logits = [[0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [0.0, 1.0]]
        for split in ("train", "validation", "dev"):
            with (old / "predictions" / f"{split}.jsonl").open("w") as f:
                for i in range(old_rows):
                    f.write(json.dumps({"id": str(i), "label": labels[i], "pred": old_preds[i]}) + "\n")
        (task / "vanilla" / "seed-0").mkdir(parents=True)
        write_safetensors(task / "vanilla" / "seed-0" / "logits.safetensors",
                          {s: new_logits for s in ("train", "validation", "dev")})
        return pathlib.Path(tmp)

    def test_rates_of_every_split(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.run_folder(tmp)
            out = subprocess.run([sys.executable, str(SCRIPT), str(run), "mrpc"], capture_output=True, text=True, check=True).stdout
            mean_dev = next(line for line in out.splitlines() if line.split()[:2] == ["mean", "dev"])
            # old acc 50%, new acc 50%, NFR 25% (row 0), PFR 25% (row 2)
            self.assertEqual(mean_dev.split()[2:], ["50.00%", "50.00%", "25.00%", "25.00%"])

    def test_a_row_count_mismatch_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.run_folder(tmp, old_rows=3)
            done = subprocess.run([sys.executable, str(SCRIPT), str(run), "mrpc"], capture_output=True, text=True)
            self.assertEqual(done.returncode, 2)
            self.assertIn("has 4 rows of logits, the old model 3", done.stderr)


if __name__ == "__main__":
    unittest.main()
