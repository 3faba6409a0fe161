"""scripts/results.py seconds on a hand-made report.json: the old models' and each method's wall
times per unit, the methods' summed into the total (the old models' are shown, not added: each was
trained inside a unit); a report without them is named as such."""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "results.py"


def report(tasks):
    return {"experiment": "x", "seeds": [0, 1], "tasks": tasks, "units_finished": 4, "units_planned": 4}


class Seconds(unittest.TestCase):
    def run_script(self, folder):
        out = subprocess.run([sys.executable, str(SCRIPT), "seconds", str(folder)], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()

    def test_per_unit_and_total(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp) / "x"
            d.mkdir()
            (d / "report.json").write_text(json.dumps(report([{
                "task": "mrpc", "precision": "fp32", "seconds": {"old_models": [100, 300]},
                "methods": [{"method": "vanilla", "seconds": [1000, 2000]}, {"method": "bcwi", "not_applicable": "why"},
                            {"method": "gated_fusion", "seconds": [1800]}]}])))
            lines = self.run_script(d)
        self.assertEqual(lines[0], "x mrpc (new models in fp32):")
        self.assertEqual(lines[1].split(), ["old", "models", "2", "units", "200", "s/unit", "(100-300)", "total", "0.11", "h"])
        self.assertEqual(lines[2].split(), ["vanilla", "2", "units", "1500", "s/unit", "(1000-2000)", "total", "0.83", "h"])
        self.assertEqual(lines[3].split(), ["gated_fusion", "1", "units", "1800", "s/unit", "(1800-1800)", "total", "0.50", "h"])
        # 1000 + 2000 + 1800 = 4800 s; the old models' 400 s are inside those units
        self.assertEqual(lines[4], "all: 1.33 h of wall time (core-hours for one-thread runs; the old models are inside the units)")

    def test_threads_name_the_rows_and_weigh_the_core_hours(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp) / "x"
            d.mkdir()
            (d / "report.json").write_text(json.dumps(report([{
                "task": "qnli", "precision": "bf16", "seconds": {"old_models": [360, 360]}, "threads": {"old_models": [2, 2]},
                "methods": [{"method": "vanilla", "seconds": [1800, 1800], "threads": [2, None]},
                            {"method": "gated_fusion", "seconds": [900, 900], "threads": [1, 1]},
                            {"method": "old_new_prob_ensemble", "seconds": [3600]}]}])))
            lines = self.run_script(d)
        self.assertEqual(lines[1].split()[-2:], ["threads", "2"])
        self.assertEqual(lines[2].split()[-5:], ["threads", "2", "(some", "not", "recorded)"])
        self.assertEqual(lines[3].split()[-2:], ["threads", "1"])
        self.assertTrue(lines[4].endswith("total   1.00 h"), lines[4])  # no threads recorded: no threads named
        # wall 3600 + 1800 + 3600 = 9000 s = 2.50 h; core: 1800 x 2 + 1800 x 1 (not recorded) + 1800 x 1 + 3600 x 1
        # = 10800 s = 3.00 h; the old models (720 s on 2 threads) are inside the vanilla units, not added again
        self.assertEqual(lines[5], "all: 2.50 h of wall time, 3.00 core-hours "
                                   "(seconds x threads; a unit whose threads were not recorded counts as one; "
                                   "the old models are inside the units)")

    def test_a_report_without_wall_times(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp) / "x"
            d.mkdir()
            (d / "report.json").write_text(json.dumps(report([{"task": "sst2", "methods": [{"method": "vanilla"}]}])))
            lines = self.run_script(d)
        self.assertEqual(lines[0], "x sst2: no wall times in its report (published before 2026-12-02)")


if __name__ == "__main__":
    unittest.main()
