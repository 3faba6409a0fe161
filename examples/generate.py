#!/usr/bin/env python3
"""Regenerates the example prediction files for SST-2 dev from two real, simple models.

old: multinomial naive Bayes on unigrams (the kind of model a team starts with);
new: logistic regression on unigrams + bigrams, trained with SGD (a better model).
Both are trained on GLUE SST-2 train and predict SST-2 dev. Pure standard library, fixed
seed, so the output is the same on every machine:

    python3 examples/generate.py ../shared/data/glue/SST-2

Ids are flipless' content ids (data/registry: "h" + 16 hex digits of the sentence hash), so
`flipless compare ... --data sst2:dev` joins them; the ids are computed by
`flipless data ids`-compatible code below (FNV-1a 64 + SplitMix64 finaliser).
"""
import json
import math
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

MASK = (1 << 64) - 1


def splitmix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def hash64(data: bytes, seed=0):
    h = 0xCBF29CE484222325 ^ splitmix(seed)
    for c in data:
        h ^= c
        h = (h * 0x100000001B3) & MASK
    return splitmix(h)


def content_id(text):
    return "h%016x" % hash64(text.encode("utf-8"))


def read(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            text, label = line.rstrip("\n").split("\t")
            rows.append((text, int(label)))
    return rows


def unigrams(text):
    return text.split()


def features(text):
    toks = text.split()
    return toks + [a + " " + b for a, b in zip(toks, toks[1:])]


def train_nb(rows):
    counts = [Counter(), Counter()]
    docs = Counter()
    for text, y in rows:
        counts[y].update(unigrams(text))
        docs[y] += 1
    vocab = set(counts[0]) | set(counts[1])
    totals = [sum(c.values()) for c in counts]
    prior = [math.log(docs[k] / len(rows)) for k in (0, 1)]

    def predict(text):
        logp = list(prior)
        for tok in unigrams(text):
            if tok not in vocab:
                continue
            for k in (0, 1):
                logp[k] += math.log((counts[k][tok] + 1) / (totals[k] + len(vocab)))
        return logp

    return predict


def train_lr(rows, epochs=4, lr=0.2, l2=1e-6, seed=0):
    w = defaultdict(float)
    b = 0.0
    rng = random.Random(seed)
    order = list(range(len(rows)))
    for epoch in range(epochs):
        rng.shuffle(order)
        step = lr / (1 + epoch)
        for i in order:
            text, y = rows[i]
            feats = features(text)
            z = b + sum(w[f] for f in feats)
            p = 1 / (1 + math.exp(-max(min(z, 30), -30)))
            g = p - y
            for f in feats:
                w[f] -= step * (g + l2 * w[f])
            b -= step * g

    def predict(text):
        z = b + sum(w.get(f, 0.0) for f in features(text))
        return [-z / 2, z / 2]  # logits whose softmax is sigmoid(z)

    return predict


def softmax(logits):
    m = max(logits)
    e = [math.exp(x - m) for x in logits]
    s = sum(e)
    return [x / s for x in e]


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/glue/SST-2")
    out = Path(__file__).resolve().parent
    train, dev = read(src / "train.tsv"), read(src / "dev.tsv")
    old, new = train_nb(train), train_lr(train)
    with open(out / "sst2-dev-old.jsonl", "w") as f_old, open(out / "sst2-dev-new.jsonl", "w") as f_new:
        for text, y in dev:
            i = content_id(text)
            p_old = softmax(old(text))
            f_old.write(json.dumps({"id": i, "probs": [round(p, 6) for p in p_old]}) + "\n")
            l_new = new(text)
            f_new.write(json.dumps({"id": i, "logits": [round(v, 6) for v in l_new]}) + "\n")
    print("wrote", out / "sst2-dev-old.jsonl", "and", out / "sst2-dev-new.jsonl")


if __name__ == "__main__":
    main()
