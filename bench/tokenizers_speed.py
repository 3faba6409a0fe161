#!/usr/bin/env python3
"""Times Hugging Face's `tokenizers` (Rust) on the same sentences as bench/encoder_bench.

Usage: tokenizers_speed.py MODEL_DIR SENTENCES_FILE   (one sentence per line)
Prints JSON: seconds for encode_batch (parallel, all cores) and for one-at-a-time encode.
"""
import json
import os
import sys
import time

from tokenizers import Tokenizer

tok = Tokenizer.from_file(os.path.join(sys.argv[1], "tokenizer.json"))
tok.no_truncation()
tok.no_padding()
with open(sys.argv[2], encoding="utf-8") as f:
    sentences = [line.rstrip("\n") for line in f]
start = time.perf_counter()
batch = tok.encode_batch(sentences)
parallel = time.perf_counter() - start
start = time.perf_counter()
for s in sentences:
    tok.encode(s)
serial = time.perf_counter() - start
print(json.dumps({"sentences": len(sentences), "tokens": sum(len(e.ids) for e in batch),
                  "encode_batch_seconds": parallel, "encode_one_by_one_seconds": serial}))
