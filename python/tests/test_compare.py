"""flipless.compare: the same report as `flipless compare`, from files or from arrays."""
import json

import numpy as np
import pytest

import flipless
from conftest import EXAMPLES, run_cli

OLD_FILE = EXAMPLES / "sst2-dev-old.jsonl"
NEW_FILE = EXAMPLES / "sst2-dev-new.jsonl"


def read_scores(path):
    rows = [json.loads(line) for line in open(path)]
    return [r["id"] for r in rows], np.array([r.get("probs", r.get("logits")) for r in rows])


@pytest.fixture(scope="module")
def sst2():
    return flipless.compare(OLD_FILE, NEW_FILE, data="sst2:dev")


def test_bundled_sst2_equals_the_cli_json(cli, sst2):
    out = run_cli(cli, "compare", OLD_FILE, NEW_FILE, "--data", "sst2:dev", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert sst2.to_dict() == json.loads(out.stdout)
    assert sst2.to_json() == out.stdout


@pytest.mark.parametrize("fmt", ["markdown", "html", "text"])
def test_renderings_equal_the_cli(cli, sst2, fmt):
    out = run_cli(cli, "compare", OLD_FILE, NEW_FILE, "--data", "sst2:dev", "--format", fmt)
    assert out.returncode == 0, out.stderr
    assert {"markdown": sst2.to_markdown, "html": sst2.to_html, "text": sst2.to_text}[fmt]() == out.stdout


def test_attributes(sst2):
    d = sst2.to_dict()
    assert sst2.n == 872 == d["n"]
    assert sst2.labels_from == "sst2:dev"
    for name in ("old_accuracy", "new_accuracy", "accuracy_delta", "nfr", "pfr", "nfi", "btc", "bec"):
        assert getattr(sst2, name) == d["metrics"][name]["value"]
        low, high = sst2.intervals[name]
        assert low <= getattr(sst2, name) <= high
    assert sst2.flip_table["negative_flips"] == sst2.nfr * sst2.n
    # The metrics of the joined labels are the report's.
    m = flipless.metrics(sst2.y_true, sst2.old_pred, sst2.new_pred)
    assert m.nfr == sst2.nfr and m.btc == sst2.btc
    assert "nfr=6.31%" in repr(sst2)


def test_negative_flips_as_rows(sst2):
    rows = sst2.negative_flips()
    assert len(rows) == sst2.flip_table["negative_flips"]
    confidences = [r["old_confidence"] for r in rows]
    assert confidences == sorted(confidences, reverse=True)
    assert all(r["label"] == r["old_pred"] != r["new_pred"] for r in rows)
    top = sst2.to_dict()["top_negative_flips"]
    assert [r["id"] for r in rows[:len(top)]] == [t["id"] for t in top]
    assert rows[0]["text"] == top[0]["text"]
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(rows)
    assert list(frame.columns[:4]) == ["id", "label", "old_pred", "new_pred"] and len(frame) == len(rows)


def test_arrays_give_the_files_numbers(sst2):
    # The SST-2 predictions as arrays, rows aligned by the files' ids, truth from the report.
    ids, old_probs = read_scores(OLD_FILE)  # probabilities
    new_ids, new_logits = read_scores(NEW_FILE)  # logits
    new_logits = new_logits[[new_ids.index(i) for i in ids]]
    truth = sst2.y_true[[sst2.ids.index(i) for i in ids]]
    texts = {r["id"]: r["text"] for r in sst2.negative_flips()}
    r = flipless.compare(old_probs, new_logits, labels=truth, ids=ids, texts=[texts.get(i, "a b") for i in ids])
    assert r.to_dict()["metrics"] == sst2.to_dict()["metrics"]  # intervals too: same seed, same rows
    assert r.to_dict()["by_old_confidence"] == sst2.to_dict()["by_old_confidence"]
    assert r.mcnemar_p == sst2.mcnemar_p
    assert r.labels_from == "labels="
    assert [x["id"] for x in r.negative_flips()] == [x["id"] for x in sst2.negative_flips()]
    # Logits of the same probabilities: the same predictions, hence the same metrics.
    logits = flipless.compare(np.log(np.clip(old_probs, 1e-12, 1)), new_logits, labels=truth)
    assert logits.to_dict()["metrics"] == sst2.to_dict()["metrics"]


def test_arrays_with_label_names_and_pairs():
    r = flipless.compare([0, 1, 1, 0], [0, 0, 1, 0], labels=[0, 1, 1, 1], texts=["a", "b c", "d", "e f g"],
                         text_pairs=["x", "y", "z", "w"], label_names=["neg", "pos"], bootstrap=50)
    assert r.label_names == ["neg", "pos"]
    (row,) = r.negative_flips()
    assert row == {"id": "1", "label": "pos", "old_pred": "pos", "new_pred": "neg", "old_confidence": None,
                   "new_confidence": None, "text": "b c", "text_pair": "y"}
    assert r.nfr == 0.25 and r.nfi == 0.5


def test_bad_probabilities_name_the_row_and_field():
    with pytest.raises(flipless.InputError) as err:
        flipless.compare([[0.5, 0.5], [0.9, 0.3]], [0, 1], labels=[0, 1], scores="probs")
    assert str(err.value) == "old:2: field 'probs': probabilities sum to 1.2, not 1"
    assert (err.value.filename, err.value.line, err.value.field) == ("old", 2, "probs")


def test_bad_files_name_the_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "label": 0, "pred": 0}\n{"id": "b", "label": 1, "probs": [0.2, 0.3]}\n')
    with pytest.raises(flipless.InputError) as err:
        flipless.compare(bad, bad)
    assert (err.value.filename, err.value.line, err.value.field) == (str(bad), 2, "probs")
    assert isinstance(err.value, ValueError)
    with pytest.raises(flipless.IoError) as io:
        flipless.compare(tmp_path / "missing.jsonl", bad)
    assert isinstance(io.value, OSError) and "missing.jsonl: cannot open" in str(io.value)


def test_usage_errors():
    with pytest.raises(flipless.InputError, match="labels: the true labels are needed"):
        flipless.compare([0, 1], [0, 1])
    with pytest.raises(flipless.ConfigError, match="give both models as prediction files, or both as arrays"):
        flipless.compare(OLD_FILE, [0, 1])
    with pytest.raises(flipless.ConfigError, match="no such dataset|is not bundled|sst9"):
        flipless.compare(OLD_FILE, NEW_FILE, data="sst2:nope")
