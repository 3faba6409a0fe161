#!/usr/bin/env python3
"""Regenerates golden.json: BTC/BEC from microsoft/BackwardCompatibilityML's own score
functions and McNemar exact p-values from SciPy, on seeded random predictions.

Run through generate.sh, which installs both into a throwaway virtual environment.
CI only reads golden.json.
"""
import json
import random
import sys
from importlib.metadata import version

from backwardcompatibilityml import scores
from scipy.stats import binomtest


def case(rng, n, k, p_old, p_new):
    y = [rng.randrange(k) for _ in range(n)]

    def model(p):
        return [t if rng.random() < p else (t + 1 + rng.randrange(k - 1)) % k for t in y]

    old, new = model(p_old), model(p_new)
    return {
        "y_true": y,
        "old_pred": old,
        "new_pred": new,
        # BackwardCompatibilityML's argument order is (h1, h2, expected).
        "bcml_trust_compatibility_score": scores.trust_compatibility_score(old, new, y),
        "bcml_error_compatibility_score": scores.error_compatibility_score(old, new, y),
    }


def main():
    rng = random.Random(20231126)
    cases = []
    for n, k, p_old, p_new in [(10, 2, 0.7, 0.8), (50, 2, 0.85, 0.9), (100, 3, 0.6, 0.7), (500, 2, 0.9, 0.92),
                               (1000, 5, 0.5, 0.6), (37, 4, 0.3, 0.4), (2000, 2, 0.95, 0.96), (8, 3, 1.0, 0.5),
                               (8, 2, 0.0, 0.5), (300, 10, 0.8, 0.8)]:
        cases.append(case(rng, n, k, p_old, p_new))
    mcnemar = []
    for b, c in [(0, 1), (1, 0), (3, 3), (2, 9), (10, 0), (15, 5), (40, 61), (120, 150), (1000, 1100), (5000, 5400)]:
        mcnemar.append({"negative_flips": b, "positive_flips": c,
                        "p": binomtest(min(b, c), b + c, 0.5).pvalue})
    out = {
        "tools": {"backwardcompatibilityml": version("backwardcompatibilityml"), "scipy": version("scipy")},
        "cases": cases,
        "mcnemar": mcnemar,
    }
    json.dump(out, open(sys.argv[1], "w"), indent=None, separators=(",", ":"))


if __name__ == "__main__":
    main()
