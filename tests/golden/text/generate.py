#!/usr/bin/env python3
"""Regenerates wordpiece_golden.json: token ids from Hugging Face's fast BERT tokenizer
(`tokenizers`, through `transformers`' BertTokenizerFast) for every SST-2 and MRPC dev sentence,
MRPC dev pairs with and without truncation, and hand-picked hard Unicode cases.

    generate.sh    (installs the packages in a throwaway virtual environment)
"""
import gzip
import json
import sys
from importlib.metadata import version
from pathlib import Path

from transformers import BertTokenizerFast

HARD = [
    "Café résumé naïve façade", "İstanbul İSTANBUL", "Straße STRASSE", "ΟΔΟΣ οδός σοφός", "ǅemal ǆ",
    "你好世界，今天天气很好。", "こんにちは世界", "안녕하세요 세계", "ไทยภาษา", "مرحبا بالعالم",
    "👍🏽 family: 👨\u200d👩\u200d👧", "null\u0000byte bell\u0007 tab\there\nnewline\r\n",
    "line\u2028separator para\u2029graph nbsp\u00a0here ideographic\u3000space",
    "e\u0301 combining a\u0308 \u212b angstrom", "soft\u00adhyphen bom\ufeffmark zero\u200bwidth",
    "replacement \ufffd char private \ue000 use unassigned \u0378 end",
    "fullwidth ＡＢＣ ｔｅｓｔ", "ligature ﬁne ﬂow", "roman Ⅻ ⅻ", "math a+b=c <tag> x^2 $100 50% ~home `tick` |pipe|",
    "hello...world!!! (really?) [yes] {no} \"quoted\" 'single' — dash – en ‘curly’ “double” «guillemets»",
    "unaffable unbelievably antidisestablishmentarianism",
    "a" * 99, "b" * 100, "c" * 101, "x" + "é" * 120,
    "", "   ", "\u0085next\u001ffile separators\u001c",
    "mixed CASE Words With Numbers 123,456.78 and e-mail foo@bar.com http://x.org/a?b=c",
    "don't won't it's they're", "ṩ ḉ ǖ Ǖ ő Ő",
]


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        return header, [line.rstrip("\n").split("\t") for line in f]


def main():
    model_dir, glue_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    tok = BertTokenizerFast.from_pretrained(str(model_dir))
    cases = []

    def add(a, b=None, max_length=0):
        if max_length:
            enc = tok(a, b, truncation="longest_first", max_length=max_length)
        else:
            enc = tok(a, b, truncation=False)
        cases.append({"a": a, "b": b, "max_length": max_length, "ids": enc["input_ids"],
                      "type_ids": enc["token_type_ids"]})

    _, sst = read_tsv(glue_dir / "SST-2" / "dev.tsv")
    for row in sst:
        add(row[0])
    _, mrpc = read_tsv(glue_dir / "MRPC" / "dev.tsv")
    for row in mrpc:
        add(row[3])
        add(row[4])
        add(row[3], row[4], 128)
        add(row[3], row[4], 24)
    for text in HARD:
        add(text)
        add(text, "second segment", 16)
    add(HARD[0], HARD[5] * 3, 20)
    add(HARD[5] * 3, HARD[0], 20)
    add("short", "a much longer second sentence that goes on and on and on", 9)
    meta = {"transformers": version("transformers"), "tokenizers": version("tokenizers"),
            "model": str(model_dir.name), "cases": cases}
    with gzip.open(out, "wt", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
