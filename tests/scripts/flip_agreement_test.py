"""scripts/flip_agreement.py on a hand-made run folder: three vanilla models and one extra member
whose dev predictions differ row by row, so each flip's count of other new models wrong there,
and the old model's confidence on flips and on rows both get right, are known."""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from split_flips_test import NAMES, logits_for, write_safetensors  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "flip_agreement.py"

LABELS = ["neg"] * 6
# The old model is right on rows 0-3 (top probabilities sigmoid(1), sigmoid(2), sigmoid(3),
# sigmoid(1)) and wrong on rows 4-5.
OLD_LOGITS = [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [0.0, -1.0], [0.0, 1.0], [0.0, 1.0]]
NEW = {
    ("vanilla", 0): ["pos", "pos", "neg", "neg", "neg", "neg"],  # flips 0, 1
    ("vanilla", 1): ["pos", "neg", "pos", "pos", "neg", "neg"],  # flips 0, 2, 3
    ("vanilla", 2): ["pos", "neg", "neg", "pos", "pos", "pos"],  # flips 0, 3
    ("members", 1001): ["neg", "neg", "pos", "pos", "neg", "neg"],
}


class FlipAgreement(unittest.TestCase):
    def run_folder(self, tmp, models=NEW, old_rows=6):
        task = pathlib.Path(tmp) / "qnli"
        for kind, seed in models:
            if kind == "vanilla":
                old = task / "old" / f"seed-{seed}"
                (old / "predictions").mkdir(parents=True)
                (old / "result.json").write_text(json.dumps({"label_names": NAMES}))
                with (old / "predictions" / "dev.jsonl").open("w") as f:
                    for i, (label, logits) in enumerate(list(zip(LABELS, OLD_LOGITS))[:old_rows]):
                        pred = NAMES[0] if logits[0] >= logits[1] else NAMES[1]
                        f.write(json.dumps({"id": str(i), "label": label, "pred": pred, "logits": logits}) + "\n")
            (task / kind / f"seed-{seed}").mkdir(parents=True)
            write_safetensors(task / kind / f"seed-{seed}" / "logits.safetensors", {"dev": logits_for(models[(kind, seed)])})
        return pathlib.Path(tmp)

    def test_counts_of_other_models_wrong_and_old_confidence(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, str(SCRIPT), str(self.run_folder(tmp)), "qnli"],
                                 capture_output=True, text=True, check=True).stdout
        lines = out.splitlines()
        self.assertIn("3 other new models", lines[0])
        rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
        # seed 0: row 0 -> vanilla 1 and 2 wrong (2), row 1 -> none (0); old conf (s(1)+s(2))/2, both right (s(3)+s(1))/2
        self.assertEqual(rows["0"], ["2", "33.33%", "50.0%", "0.0%", "50.0%", "0.0%", "0.806", "0.842"])
        # seed 1: row 0 -> 2 (vanilla 0, 2), row 2 -> 1 (the member), row 3 -> 2 (vanilla 2, member)
        self.assertEqual(rows["1"], ["3", "50.00%", "0.0%", "33.3%", "66.7%", "0.0%", "0.805", "0.881"])
        # seed 2: row 0 -> 2 (vanilla 0, 1), row 3 -> 2 (vanilla 1, member)
        self.assertEqual(rows["2"], ["2", "33.33%", "0.0%", "0.0%", "100.0%", "0.0%", "0.731", "0.917"])
        self.assertEqual(len(rows), 3)  # members have no row of their own

    def test_one_new_model_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, str(SCRIPT), str(self.run_folder(tmp, {("vanilla", 0): NEW[("vanilla", 0)]})), "qnli"],
                                  capture_output=True, text=True)
        self.assertEqual(done.returncode, 2)
        self.assertIn("needs at least two finished new models", done.stderr)

    def test_a_row_count_mismatch_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, str(SCRIPT), str(self.run_folder(tmp, old_rows=5)), "qnli"],
                                  capture_output=True, text=True)
        self.assertEqual(done.returncode, 2)
        self.assertIn("dev has 6 rows of logits, the old model 5", done.stderr)


if __name__ == "__main__":
    unittest.main()
