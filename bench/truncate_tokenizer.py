#!/usr/bin/env python3
"""Writes a BPE tokenizer.json cut to the first N ids, for serving random
real-shape checkpoints whose vocabulary has no tokenizer.json here (e.g. the
TinyLlama-1.1B shape, 32000 ids): the merges kept are those whose parts and
result all stay below N, added tokens at or above N are dropped.

    bench/truncate_tokenizer.py ../shared/tokenizers/smollm-bpe/tokenizer.json 32000 OUT_DIR

The text it produces is meaningless on random weights; it only lets `bwla serve`
take text prompts and return text, for throughput measurements."""
import json
import os
import sys

src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = json.load(open(src, encoding="utf-8"))
vocab = {k: v for k, v in t["model"]["vocab"].items() if v < n}
if len(vocab) != n:
    sys.exit(f"{src}: ids below {n} are not contiguous ({len(vocab)} tokens)")
merges = []
for m in t["model"]["merges"]:
    a, b = m.split(" ", 1) if isinstance(m, str) else m
    if a in vocab and b in vocab and (a + b) in vocab:
        merges.append(m)
t["model"]["vocab"] = vocab
t["model"]["merges"] = merges
t["added_tokens"] = [a for a in t.get("added_tokens", []) if a["id"] < n]
os.makedirs(out, exist_ok=True)
path = os.path.join(out, "tokenizer.json")
if os.path.exists(path):
    sys.exit(f"{path} exists; not overwriting it")
with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(t, f, ensure_ascii=False)
os.replace(path + ".tmp", path)
print(f"{path}: {len(vocab)} tokens, {len(merges)} merges, {len(t['added_tokens'])} added tokens")
