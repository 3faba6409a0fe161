#!/usr/bin/env python3
"""Times BackwardCompatibilityML's trust/error compatibility scores on label arrays.

Usage: bcml_scores.py LABELS_FILE  (three lines: y_true, old_pred, new_pred, space-separated)
Prints one JSON line: {"btc": ..., "bec": ..., "seconds": ...}. Reading is not timed.
"""
import json
import sys
import time

from backwardcompatibilityml import scores

with open(sys.argv[1]) as f:
    y, old, new = ([int(v) for v in f.readline().split()] for _ in range(3))
start = time.perf_counter()
btc = scores.trust_compatibility_score(old, new, y)
bec = scores.error_compatibility_score(old, new, y)
seconds = time.perf_counter() - start
print(json.dumps({"btc": btc, "bec": bec, "seconds": seconds}))
