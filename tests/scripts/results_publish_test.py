"""scripts/results.py publish RUN_DIR [AS] into a scratch results folder: a run is published under
its experiment's name, a rerun beside it under a name that begins with the experiment's, and the
summary across upgrades gives each published folder its own row."""
import contextlib
import importlib.util
import io
import json
import pathlib
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("results", ROOT / "scripts" / "results.py")
results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results)


def write_run(run, old_acc, new_acc):
    (run / "report").mkdir(parents=True)
    method = {"method": "vanilla", "seeds": 2, "nfr": {"mean": 0.05, "std": 0.01}, "accuracy": {"mean": new_acc, "std": 0.01}}
    task = {"task": "mrpc", "upgrade": {"old_accuracy": old_acc, "new_accuracy": new_acc, "gain": new_acc - old_acc},
            "methods": [method], "claims": []}
    (run / "report" / "report.json").write_text(json.dumps({"experiment": "upgrade-x-mrpc", "seeds": [0, 1], "tasks": [task]}))
    (run / "report" / "report.md").write_text("# upgrade-x-mrpc\n")
    (run / "experiment.yaml").write_text("name: upgrade-x-mrpc\n")


class Publish(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.tmp.name)
        results.RESULTS = self.root / "results"
        self.first, self.second = self.root / "runs" / "a", self.root / "runs" / "b"
        write_run(self.first, 0.70, 0.78)
        write_run(self.second, 0.70, 0.77)

    def tearDown(self):
        self.tmp.cleanup()

    def publish(self, *args):
        with contextlib.redirect_stdout(io.StringIO()):
            results.publish(*args)

    def test_a_rerun_is_kept_beside_its_experiment(self):
        self.publish(self.first)
        self.publish(self.second, "upgrade-x-mrpc-rerun")
        for folder, acc in (("upgrade-x-mrpc", 0.78), ("upgrade-x-mrpc-rerun", 0.77)):
            report = json.loads((results.RESULTS / folder / "report.json").read_text())
            self.assertEqual(report["tasks"][0]["upgrade"]["new_accuracy"], acc)
            self.assertTrue((results.RESULTS / folder / "experiment.yaml").exists())
        rows = [line.split(" | ")[0] for line in results.render_summary("upgrades").splitlines()[2:]]
        self.assertEqual(rows, ["| x-mrpc-rerun", "| x-mrpc"])  # sorted by the gain: 7 points, then 8

    def test_a_rerun_name_must_begin_with_the_experiments(self):
        for bad in ("other-mrpc", "upgrade-x-mrpc", "upgrade-x-mrpc-a/b"):
            with self.assertRaises(SystemExit) as e:
                self.publish(self.second, bad)
            self.assertIn("must begin with the experiment's", str(e.exception))
        self.assertFalse(results.RESULTS.exists())


class StrongestBaseline(unittest.TestCase):
    """A report that says how its strongest baseline was chosen gets a line saying so; the set-aside
    baselines are named with their accuracy against vanilla."""

    def test_the_rule_and_the_set_aside_baselines_are_quoted(self):
        with tempfile.TemporaryDirectory() as tmp:
            results.RESULTS = pathlib.Path(tmp)
            write_run(pathlib.Path(tmp) / "upgrade-x-mrpc", 0.70, 0.78)
            report_file = pathlib.Path(tmp) / "upgrade-x-mrpc" / "report.json"
            report = json.loads((pathlib.Path(tmp) / "upgrade-x-mrpc" / "report" / "report.json").read_text())
            report.update(units_finished=2, units_planned=2)
            report["tasks"][0]["upgrade"]["is_upgrade"] = True
            report["tasks"][0]["strongest_baseline"] = {"method": "elodi", "accuracy_band": 0.01, "outside_band": False,
                                                        "set_aside": [{"method": "focal_distillation", "accuracy_change_vs_vanilla": -0.0583}]}
            report_file.write_text(json.dumps(report))
            text = results.render("upgrade-x-mrpc", "mrpc")
            self.assertIn("Strongest baseline: ELODI, the lowest mean NFR among the baselines at most 1 point less accurate than vanilla; "
                          "set aside for accuracy: focal distillation (-5.83 points).", text)
            report["tasks"][0]["strongest_baseline"].update(method="focal_distillation", outside_band=True)
            report_file.write_text(json.dumps(report))
            self.assertIn("since none is within 1 point of vanilla's accuracy: focal distillation (-5.83 points).",
                          results.render("upgrade-x-mrpc", "mrpc"))


if __name__ == "__main__":
    unittest.main()
