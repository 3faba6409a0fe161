#!/usr/bin/env python3
"""Metrics on 10M-element label arrays from Python: flipless against the same computed in
hand-written NumPy and against BackwardCompatibilityML's score functions, in one run.

Usage: python_metrics_bench.py [--rows N] [--repeats R] [--bcml-rows M]
Needs the flipless package (scripts/python_venv.sh) and, for the baseline,
backwardcompatibilityml importable (scripts/bench.sh puts its unpacked wheel on PYTHONPATH).
Each timing is the best of R runs, flipless and NumPy alternating; arrays are made before timing. BackwardCompatibilityML is
pure Python: it runs on M rows (all N by default) once, and its time is scaled to N rows when
M < N (it is linear in rows). Prints a table and the ratios.
"""
import argparse
import os
import platform
import time

import numpy as np

import flipless


def best_of(repeats, fn):
    best = float("inf")
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def numpy_all_metrics(y, old, new):
    """Every metric flipless.metrics() gives, by hand in NumPy."""
    old_ok = old == y
    new_ok = new == y
    both_correct = np.count_nonzero(old_ok & new_ok)
    negative = np.count_nonzero(old_ok & ~new_ok)
    positive = np.count_nonzero(~old_ok & new_ok)
    n = len(y)
    both_wrong = n - both_correct - negative - positive
    new_errors = negative + both_wrong
    old_correct = both_correct + negative
    return {
        "old_accuracy": old_correct / n, "new_accuracy": (both_correct + positive) / n,
        "nfr": negative / n, "pfr": positive / n,
        "nfi": negative / new_errors if new_errors else None,
        "btc": both_correct / old_correct if old_correct else None,
        "bec": both_wrong / new_errors if new_errors else None,
    }


def numpy_nfr(y, old, new):
    return np.count_nonzero((old == y) & (new != y)) / len(y)


def numpy_btc(y, old, new):
    old_ok = old == y
    return np.count_nonzero(old_ok & (new == y)) / np.count_nonzero(old_ok)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--bcml-rows", type=int, default=0, help="rows for BackwardCompatibilityML (default: all)")
    args = parser.parse_args()
    n = args.rows

    rng = np.random.default_rng(0)
    k = 3
    y = rng.integers(0, k, n)  # int64, NumPy's default
    old = np.where(rng.random(n) < 0.85, y, (y + rng.integers(1, k, n)) % k)
    new = np.where(rng.random(n) < 0.88, y, (y + rng.integers(1, k, n)) % k)
    y32, old32, new32 = (a.astype(np.int32) for a in (y, old, new))
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"numpy {np.__version__}, flipless {flipless.__version__}, python {platform.python_version()}")
    print(f"rows: {n:,}, {k} classes; best of {args.repeats}, flipless and NumPy alternating\n")

    # Each flipless measurement and its NumPy counterpart run alternately, best of R each, so
    # that load from other processes falls on both alike.
    pairs = [
        ("flipless.metrics (int64 arrays: every metric)", lambda: flipless.metrics(y, old, new),
         "NumPy by hand: every metric (int64)", lambda: numpy_all_metrics(y, old, new)),
        ("flipless.metrics (int32 arrays)", lambda: flipless.metrics(y32, old32, new32),
         "NumPy by hand: every metric (int32)", lambda: numpy_all_metrics(y32, old32, new32)),
        ("flipless.nfr (int64)", lambda: flipless.nfr(y, old, new),
         "NumPy by hand: nfr (int64)", lambda: numpy_nfr(y, old, new)),
        ("flipless.btc (int64)", lambda: flipless.btc(y, old, new),
         "NumPy by hand: btc (int64)", lambda: numpy_btc(y, old, new)),
    ]
    best = {}
    results = {}
    for _ in range(args.repeats):
        for f_name, f, n_name, g in pairs:
            for name, fn in ((f_name, f), (n_name, g)):
                seconds, results[name] = best_of(1, fn)
                best[name] = min(best.get(name, float("inf")), seconds)
    f_all, n_all = results[pairs[0][0]], results[pairs[0][2]]
    for name in ("nfr", "btc", "bec", "nfi", "old_accuracy"):
        assert abs(getattr(f_all, name) - n_all[name]) < 1e-12, name
    assert results["flipless.nfr (int64)"] == results["NumPy by hand: nfr (int64)"]
    assert abs(results["flipless.btc (int64)"] - results["NumPy by hand: btc (int64)"]) < 1e-12
    rows = [(f_name, best[f_name]) for f_name, _, _, _ in pairs] + [(n_name, best[n_name]) for _, _, n_name, _ in pairs]

    bcml_seconds = None
    try:
        from backwardcompatibilityml import scores
    except ImportError:
        print("BackwardCompatibilityML not importable: its rows are left out\n")
    else:
        m = args.bcml_rows or n
        lists = [a[:m].tolist() for a in (old, new, y)]  # its fastest input; the conversion is not timed
        start = time.perf_counter()
        bcml_btc = scores.trust_compatibility_score(*lists)
        bcml_seconds = (time.perf_counter() - start) * n / m
        sub = flipless.btc(y[:m], old[:m], new[:m])
        assert abs(bcml_btc - sub) < 1e-12, (bcml_btc, sub)
        rows.append((f"BackwardCompatibilityML 1.4.2 trust_compatibility_score (lists{'' if m == n else f', {m:,} rows scaled'})",
                     bcml_seconds))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'ms':>10}  {'M rows/s':>9}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds * 1e3:>10.2f}  {n / seconds / 1e6:>9.0f}")
    t = dict(rows)
    print("\nratios (higher: flipless faster)")
    print(f"  every metric, flipless vs NumPy by hand (int64): {t['NumPy by hand: every metric (int64)'] / t['flipless.metrics (int64 arrays: every metric)']:.2f}x")
    print(f"  every metric, flipless vs NumPy by hand (int32): {t['NumPy by hand: every metric (int32)'] / t['flipless.metrics (int32 arrays)']:.2f}x")
    print(f"  nfr, flipless vs NumPy by hand:                  {t['NumPy by hand: nfr (int64)'] / t['flipless.nfr (int64)']:.2f}x")
    print(f"  btc, flipless vs NumPy by hand:                  {t['NumPy by hand: btc (int64)'] / t['flipless.btc (int64)']:.2f}x")
    if bcml_seconds is not None:
        print(f"  btc, flipless vs BackwardCompatibilityML:        {bcml_seconds / t['flipless.btc (int64)']:.0f}x")


if __name__ == "__main__":
    main()
