"""Metrics from Python: the C++ definitions, the same numbers as the CLI and as
BackwardCompatibilityML, array-likes of every kind, and errors that name what is wrong."""
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flipless
from conftest import run_cli

# 8 examples, 3 classes, checked by hand (as tests/unit/metrics/metrics_test.cc): both correct
# {0,2,5,7}, negative flips {1,3}, positive flip {6}, both wrong {4}.
Y = [0, 1, 2, 0, 1, 2, 0, 1]
OLD = [0, 1, 2, 0, 2, 2, 1, 1]
NEW = [0, 2, 2, 1, 0, 2, 0, 1]


def random_case(seed, n=500, k=3, p_old=0.8, p_new=0.85):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)

    def model(p):
        wrong = (y + rng.integers(1, k, n)) % k
        return np.where(rng.random(n) < p, y, wrong)

    return y, model(p_old), model(p_new)


def test_hand_checked_fixture():
    m = flipless.metrics(Y, OLD, NEW)
    assert m.counts == (4, 2, 1, 1)
    assert m.n == 8 and not m.weighted
    assert m.nfr == 2 / 8 and m.pfr == 1 / 8
    assert m.old_accuracy == 6 / 8 and m.new_accuracy == 5 / 8
    assert m.nfi == pytest.approx(2 / 3) and m.btc == pytest.approx(4 / 6) and m.bec == pytest.approx(1 / 3)
    assert m.accuracy_delta == pytest.approx(-1 / 8)
    assert flipless.nfr(Y, OLD, NEW) == 0.25
    assert flipless.negative_flip_impact(Y, OLD, NEW) == pytest.approx(2 / 3)
    assert flipless.btc(Y, OLD, NEW) == pytest.approx(4 / 6)
    assert flipless.bec(Y, OLD, NEW) == pytest.approx(1 / 3)
    assert flipless.accuracy(Y, OLD) == 0.75
    assert m.to_dict()["counts"]["negative_flips"] == 2


def test_labels_probabilities_and_logits_agree():
    y, old, new = random_case(1)
    k = 3
    rng = np.random.default_rng(2)

    def scores(pred, logits):
        s = rng.random((len(pred), k)).astype(np.float32)
        s[np.arange(len(pred)), pred] += 2.0  # the prediction wins
        if logits:
            return np.log(s) * 3.0
        return s / s.sum(axis=1, keepdims=True)

    expected = flipless.metrics(y, old, new)
    for o in (scores(old, False), scores(old, True), scores(old, True).astype(np.float64)):
        for n in (new, scores(new, True), scores(new, False).astype(np.float64)):
            assert flipless.metrics(y, o, n) == expected


def test_ties_go_to_the_lowest_index():
    scores = np.array([[0.5, 0.5], [0.2, 0.8]], dtype=np.float32)
    assert flipless.nfr([0, 1], scores, [1, 1]) == 0.5  # row 0 predicts 0: a negative flip
    assert flipless.nfr([0, 1], scores.astype(np.float64), [1, 1]) == 0.5


@pytest.mark.parametrize("convert", [
    list, np.array, lambda a: np.asarray(a, np.int32), lambda a: np.asarray(a, np.int16),
    lambda a: np.asarray(a, np.uint8), lambda a: np.asarray(a, np.float64),
    lambda a: np.repeat(np.asarray(a), 2)[::2],  # not contiguous
])
def test_array_likes(convert):
    assert flipless.metrics(convert(Y), convert(OLD), convert(NEW)) == flipless.metrics(Y, OLD, NEW)


def test_pandas_series():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"y": Y, "old": OLD, "new": NEW})
    assert flipless.nfr(df["y"], df["old"], df["new"]) == 0.25


def test_mixed_int32_and_int64():
    assert flipless.metrics(np.int32(Y), np.int64(OLD), NEW) == flipless.metrics(Y, OLD, NEW)


def test_weights():
    w = [1, 3, 1, 1, 1, 1, 1, 1]  # example 1 (a negative flip) costs 3
    assert flipless.nfr(Y, OLD, NEW, weights=w) == pytest.approx(4 / 10)
    assert flipless.metrics(Y, OLD, NEW, weights=w).weighted
    y, old, new = random_case(3)
    unit = flipless.metrics(y, old, new, weights=np.ones(len(y)))
    plain = flipless.metrics(y, old, new)
    assert unit.counts == plain.counts and unit.nfr == plain.nfr and unit.btc == plain.btc


@pytest.mark.parametrize("seed", range(5))
def test_properties(seed):
    y, old, new = random_case(seed, n=300)
    m = flipless.metrics(y, old, new)
    assert 0 <= m.nfr <= 1
    assert m.accuracy_delta == pytest.approx(m.pfr - m.nfr)
    swapped = flipless.metrics(y, new, old)
    assert swapped.nfr == m.pfr and swapped.pfr == m.nfr
    assert flipless.nfr(y, old, old) == 0
    order = np.random.default_rng(seed).permutation(len(y))
    assert flipless.metrics(y[order], old[order], new[order]) == m


def test_undefined_metrics_raise_and_show_as_none():
    # The new model makes no error: NFI and BEC are undefined. The old one is never right: BTC.
    with pytest.raises(flipless.UndefinedMetricError, match="NFI is undefined"):
        flipless.nfi([0, 1], [1, 0], [0, 1])
    with pytest.raises(flipless.UndefinedMetricError, match="BEC is undefined"):
        flipless.bec([0, 1], [1, 0], [0, 1])
    with pytest.raises(flipless.UndefinedMetricError, match="BTC is undefined"):
        flipless.btc([0, 1], [1, 0], [0, 1])
    m = flipless.metrics([0, 1], [1, 0], [0, 1])
    assert m.nfi is None and m.bec is None and m.btc is None and m.nfr == 0.0
    assert issubclass(flipless.UndefinedMetricError, ValueError)


@pytest.mark.parametrize("args, message", [
    (([], [], []), "no examples: flip metrics need at least one"),
    (([0, 1], [0, 1], [0]), "label arrays differ in length: truth 2, old 2, new 1"),
    (([0, 1], [0, 1], [[[0]]]), "new_pred: expected labels (n,) or scores (n, k), got an array of shape (1, 1, 1)"),
    (([0, 1], [0, 1.5], [0, 1]), "old_pred:2: field 'label': 1.5 is not a whole number"),
    (([0, 1], ["a", "b"], [0, 1]), "old_pred: labels must be integers (class indices), got dtype <U1"),
    (([0, 1], [[0.2, np.nan], [0.1, 0.9]], [0, 1]), "old_pred:1: field 'scores': scores must be finite numbers"),
])
def test_bad_input_is_an_input_error(args, message):
    with pytest.raises(flipless.InputError) as err:
        flipless.metrics(*args)
    assert str(err.value).startswith(message)
    assert isinstance(err.value, ValueError)


def test_bad_weights():
    with pytest.raises(flipless.InputError, match="weight -1 of example 1 is not a finite number >= 0"):
        flipless.nfr([0, 1], [0, 1], [0, 1], weights=[1, -1])
    with pytest.raises(flipless.InputError, match="weights have length 1, labels 2"):
        flipless.nfr([0, 1], [0, 1], [0, 1], weights=[1])


def test_equals_the_cli_json(cli, tmp_path):
    # Prediction files with labels, probabilities and logits; the CLI's numbers against Python's.
    y, old, new = random_case(7, n=400, k=3)
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(len(y), 3)).astype(np.float32)
    logits[np.arange(len(y)), new] += 4
    with open(tmp_path / "old.jsonl", "w") as f:
        for i in range(len(y)):
            f.write(json.dumps({"id": f"ex{i}", "label": int(y[i]), "pred": int(old[i])}) + "\n")
    with open(tmp_path / "new.jsonl", "w") as f:
        for i in range(len(y)):
            f.write(json.dumps({"id": f"ex{i}", "logits": [float(v) for v in logits[i]]}) + "\n")
    out = run_cli(cli, "compare", tmp_path / "old.jsonl", tmp_path / "new.jsonl", "--format", "json")
    assert out.returncode == 0, out.stderr
    expected = json.loads(out.stdout)["metrics"]
    m = flipless.metrics(y, old, logits)
    for name in ("old_accuracy", "new_accuracy", "accuracy_delta", "nfr", "pfr", "nfi", "btc", "bec"):
        assert getattr(m, name) == pytest.approx(expected[name]["value"], rel=1e-12, abs=1e-15), name


def test_equals_backwardcompatibilityml_btc():
    bcml = pytest.importorskip("backwardcompatibilityml.scores")
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n, k = int(rng.integers(5, 2000)), int(rng.integers(2, 6))
        y, old, new = random_case(seed, n=n, k=k, p_old=rng.random(), p_new=rng.random())
        expected = bcml.trust_compatibility_score(old.tolist(), new.tolist(), y.tolist())
        m = flipless.metrics(y, old, new)
        if m.btc is None:  # BackwardCompatibilityML returns 0 where BTC is undefined
            assert expected == 0
        else:
            assert m.btc == pytest.approx(expected, rel=1e-12)


NO_COPY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import flipless

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

    dtype = np.dtype(sys.argv[1])
    n = 25_000_000
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 3, n).astype(dtype) for _ in range(3)]
    flipless.metrics(*arrays[:3])  # warm-up: import-time allocations are not the call's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident size (VmHWM) to the current one
    before = status("VmRSS")
    m = flipless.metrics(*arrays)
    print((status("VmHWM") - before) / 2**20, dtype.itemsize * n / 2**20)
""")


def peak_growth_mib(dtype):
    out = subprocess.run([sys.executable, "-c", NO_COPY_SCRIPT, dtype], capture_output=True, text=True)
    if out.returncode != 0 and "clear_refs" in out.stderr:
        pytest.skip("this kernel does not let a process reset its peak resident size")
    assert out.returncode == 0, out.stderr
    growth, array_mib = map(float, out.stdout.split())
    return growth, array_mib


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_no_copies_for_contiguous_int_arrays(dtype):
    growth, array_mib = peak_growth_mib(dtype)
    assert growth < 8, f"metrics() on three {array_mib:.0f} MiB {dtype} arrays grew the peak by {growth:.1f} MiB"


def test_the_copy_check_sees_a_copy():
    # int16 arrays are widened (copied): the same measurement must see it, or it proves nothing.
    growth, array_mib = peak_growth_mib("int16")
    assert growth > 3 * array_mib
