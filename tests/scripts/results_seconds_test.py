"""scripts/results.py seconds on a hand-made report.json: the old models' and each method's wall
times per unit, summed into the total; a report without them is named as such."""
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
        self.assertEqual(lines[4], "all: 1.44 h of wall time (core-hours for one-thread runs)")  # 5200 s

    def test_a_report_without_wall_times(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp) / "x"
            d.mkdir()
            (d / "report.json").write_text(json.dumps(report([{"task": "sst2", "methods": [{"method": "vanilla"}]}])))
            lines = self.run_script(d)
        self.assertEqual(lines[0], "x sst2: no wall times in its report (published before 2026-12-02)")


if __name__ == "__main__":
    unittest.main()
