#!/usr/bin/env python3
"""Regenerates the hand-made seeds of fuzz/corpus/<target>/ (seed_* files).

Usage: fuzz/make_seeds.py [--shared ../shared] [--packed DIR...] [--settings FILE]
  --packed DIR...  packed models of stories260K (bwla quantize ... --abits 8 &&
                   bwla pack ...), each shrunk into a packed_loader seed (the
                   first also with tensors not 64-byte aligned)
  --settings FILE  the resume settings printed by
                   BWLA_FUZZ_PRINT_SETTINGS=1 build-fuzz/fuzz_resume_state -runs=0
Files found by fuzzing (crash regressions, named regress-*) are kept as they are.

The packed_loader seeds were made from these (build-fuzz/bwla works, slowly):
  M=../shared/models/stories260K-hf
  bwla quantize $M --method bwla --no-groups --abits 8 -o /tmp/q
  bwla pack /tmp/q -o okt_psp_f16
  bwla pack /tmp/q -o psp_i8_q8head_f32 --psp-dtype i8 --head-dtype q8 --scale-dtype f32
  bwla pack /tmp/q -o q4head --head-dtype q4
  bwla quantize $M --method bwla --transform hadamard --abits 4 --no-psp -o /tmp/q4
  bwla pack /tmp/q4 -o hadamard_planes --max-planes 8
  fuzz/make_seeds.py --packed okt_psp_f16 hadamard_planes psp_i8_q8head_f32 q4head
"""
import argparse
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def compact(j):
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def head_lines(path, n):
    with open(path, encoding="utf-8") as f:
        return "".join(f.readline() for _ in range(n))


# ------------------------------------------------------------------ config
def config_seeds(shared):
    for m in ["stories260K-hf", "TinyStories-656K", "mixtext-8m"]:
        p = os.path.join(shared, "models", m, "config.json")
        if os.path.exists(p):
            put("config", m, open(p, "rb").read())
    base = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
            "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 4,
            "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
    put("config", "qwen2", compact(dict(base, architectures=["Qwen2ForCausalLM"],
                                        use_sliding_window=True, sliding_window=256,
                                        eos_token_id=[2, 3])))
    put("config", "qwen3", compact(dict(base, architectures=["Qwen3ForCausalLM"], head_dim=16,
                                        attention_bias=False, torch_dtype="bfloat16")))
    put("config", "mistral", compact(dict(base, architectures=["MistralForCausalLM"],
                                          sliding_window=128, rope_theta=1e6)))
    put("config", "llama3_rope", compact(dict(base, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}, mlp_bias=True)))
    put("config", "quantized", compact(dict(base, quantization_config={
        "quant_method": "bwla-packed", "format_version": 3, "abits": 8})))


# --------------------------------------------------------------- tokenizer
SP_TOKENS = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(0x20, 0x30)] + \
    ["\u2581", "e", "h", "l", "o", "t", "w", "r", "d", "a", "n", "\u2581t", "he", "\u2581the",
     "ll", "\u2581he", "\u2581hell", "\u2581hello", "or", "\u2581w", "\u2581wor", "\u2581world",
     "an", "\u2581an", "\u2581and"]
SP_MERGES = ["\u2581 t", "h e", "\u2581t he", "l l", "\u2581 he", "\u2581he ll", "\u2581hell o",
             "o r", "\u2581 w", "\u2581w or", "\u2581wor l", "\u2581worl d", "a n", "\u2581 an",
             "\u2581an d"]


def added(tokens):
    return [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for i, t in tokens]


def vocab_of(tokens, merges):
    v = {t: i for i, t in enumerate(tokens)}
    for m in merges:  # every merge result must be in the vocab
        a, b = m.split(" ")
        v.setdefault(a + b, len(v))
    return v


def tokenizer_seeds(shared):
    p = os.path.join(shared, "models", "stories260K-hf", "tokenizer.json")
    if os.path.exists(p):  # the real file, minified (about 11 KB)
        put("tokenizer", "stories260K", compact(json.load(open(p, encoding="utf-8"))))
    # SentencePiece style as in Llama-2 / stories260K (Prepend + Replace normalizer).
    sp = {"version": "1.0", "added_tokens": added([(0, "<unk>"), (1, "<s>"), (2, "</s>")]),
          "normalizer": {"type": "Sequence", "normalizers": [
              {"type": "Prepend", "prepend": "\u2581"},
              {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
          "pre_tokenizer": None,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}}],
                             "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
          "decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
              {"type": "ByteFallback"}, {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                    "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": True, "byte_fallback": True,
                    "vocab": vocab_of(SP_TOKENS, SP_MERGES), "merges": SP_MERGES}}
    put("tokenizer", "sp_small", compact(sp) + "\0Hello world and the <s>w\u00f6rld \U0001F600")
    # SentencePiece with a Metaspace pre-tokenizer/decoder (newer Llama-2 exports).
    ms = dict(sp, normalizer=None,
              pre_tokenizer={"type": "Metaspace", "replacement": "\u2581",
                             "prepend_scheme": "first", "split": True},
              decoder={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                       "split": True})
    ms["model"] = dict(sp["model"], merges=[m.split(" ") for m in SP_MERGES])
    put("tokenizer", "sp_metaspace", compact(ms) + "\0 the  world\tand hello")
    put("tokenizer", "sp_with_side_files",
        compact(sp) + "\0hello <s>" + "\0" +
        compact({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": True,
                 "add_eos_token": False}) +
        "\0" + compact({"bos_token_id": 1, "eos_token_id": [2]}))
    # Byte-level BPE (GPT-2 / SmolLM / Qwen / Llama-3 style).
    def bl(s):  # bytes -> GPT-2 byte-level code points
        table, n = {}, 0
        for b in range(256):
            if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF:
                table[b] = chr(b)
            else:
                table[b] = chr(256 + n)
                n += 1
        return "".join(table[b] for b in s.encode())
    base = [bl(chr(c)) for c in range(0x20, 0x7F)] + [bl("\n"), bl("\u00e9")[:1]]
    pairs = [(" ", "t"), ("h", "e"), ("t", "he"), (" t", "he"), ("l", "l"), ("e", "ll"),
             ("h", "ell"), ("hell", "o"), (" ", "w"), ("o", "r"), (" w", "or"), ("l", "d"),
             (" wor", "ld"), ("i", "n"), (" ", "in"), ("'", "s"), ("1", "2")]
    merges = [bl(a) + " " + bl(b) for a, b in pairs]
    vocab = vocab_of(base, merges)
    eot = len(vocab)
    bpe = {"version": "1.0",
           "added_tokens": added([(eot, "<|endoftext|>"), (eot + 1, "<|im_start|>")]),
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                             "trim_offsets": True, "use_regex": True},
           "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                              "trim_offsets": False, "use_regex": True},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                       "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": "", "end_of_word_suffix": "",
                     "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    put("tokenizer", "bytelevel_small",
        compact(bpe) + "\0hello world, it's 12 in the<|endoftext|> caf\u00e9\n")
    # Llama-3 style: Split regex + ByteLevel without regex, TemplateProcessing BOS.
    l3 = dict(bpe, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex":
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        post_processor={"type": "TemplateProcessing",
                        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                   {"Sequence": {"id": "A", "type_id": 0}}],
                        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [eot],
                                                             "tokens": ["<|endoftext|>"]}}})
    l3["model"] = dict(bpe["model"], ignore_merges=True)
    put("tokenizer", "bytelevel_split", compact(l3) + "\0I'M 12345 don't  stop\n now<|im_start|>")
    # Digits / WhitespaceSplit / normalizer Strip + regex Replace.
    misc = dict(bpe, normalizer={"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "NFC"}]},
        pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True},
            {"type": "Split", "pattern": {"String": ","}, "behavior": "MergedWithPrevious"},
            {"type": "ByteLevel", "add_prefix_space": True, "use_regex": False}]},
        post_processor={"type": "RobertaProcessing", "cls": ["<|im_start|>", eot + 1],
                        "sep": ["<|endoftext|>", eot]})
    put("tokenizer", "bytelevel_misc", compact(misc) + "\0  hello,   world 2024,12  ")


# ------------------------------------------------------------------- tasks
TASKS = ["piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "lambada"]


def tasks_seeds(shared):
    d = os.path.join(shared, "data")
    def sel(name):
        return bytes([TASKS.index(name)])
    if os.path.isdir(d):
        put("tasks", "piqa", sel("piqa") + head_lines(f"{d}/piqa/valid.jsonl", 2).encode() + b"\0" +
            head_lines(f"{d}/piqa/valid-labels.lst", 2).encode())
        put("tasks", "arc_easy", sel("arc_easy") + head_lines(f"{d}/arc/ARC-Easy-Test.jsonl", 2).encode())
        put("tasks", "arc_challenge",
            sel("arc_challenge") + head_lines(f"{d}/arc/ARC-Challenge-Test.jsonl", 1).encode())
        put("tasks", "hellaswag",
            sel("hellaswag") + head_lines(f"{d}/hellaswag/hellaswag_val_full.txt", 12).encode())
        put("tasks", "winogrande", sel("winogrande") + head_lines(f"{d}/winogrande/dev.jsonl", 2).encode() +
            b"\0" + head_lines(f"{d}/winogrande/dev-labels.lst", 2).encode())
        lam = "".join(json.dumps({"text": json.loads(l)["text"][-200:]}) + "\n"
                      for l in head_lines(f"{d}/lambada/lambada_test.jsonl", 2).splitlines())
        put("tasks", "lambada", sel("lambada") + lam.encode())
    # Edge cases: CRLF lines, blank lines, numeric-label ARC, answer field.
    put("tasks", "arc_numeric", sel("arc_easy") + compact(
        {"id": "x", "question": {"stem": "2+2?", "choices": [{"text": "3", "label": "1"},
                                                            {"text": "4", "label": "2"}]},
         "answerKey": "2"}).encode() + b"\r\n\r\n")
    put("tasks", "winogrande_crlf", sel("winogrande") +
        b'{"sentence":"A _ b.","option1":"x","option2":"y","answer":"1"}\r\n' + b"\0 1 \r\n")


# ------------------------------------------------------------ resume state
def resume_seeds(settings_file):
    rep = {"layer": 0, "block_rel_error": 0.0123, "block_error_tokens": 1024, "seconds": 1.5,
           "linears": [{"name": "layers.0.q_proj", "rel_out_error": 0.1}],
           "phase_seconds": {"forward": 0.1, "quantize": 1.2}}
    if settings_file:
        s = json.load(open(settings_file))
        put("resume_state", "match", json.dumps(s, indent=2) + "\0" + json.dumps(rep, indent=2))
        put("resume_state", "match_no_report", json.dumps(s, indent=2))
        put("resume_state", "other_seed", compact(dict(s, seed=1)) + "\0" + compact(rep))
    put("resume_state", "not_object", "[1, 2, 3]\0" + compact({"block_rel_error": "0.1"}))
    put("resume_state", "empty", "\0")


# ------------------------------------------------------------ packed model
def read_st(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    data = b[8 + n:]
    tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in hdr.items()}
    return tensors, meta


def write_st(tensors, meta, align=0):
    """safetensors bytes; align > 0 pads (with __pad<k> U8 tensors, as the
    writer does) so every tensor starts at a multiple of align in the file."""
    def header(entries):
        hdr = {"__metadata__": meta} if meta else {}
        for k, dt, shape, a, b in entries:
            hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [a, b]}
        h = json.dumps(hdr, separators=(",", ":")).encode()
        return h + b" " * (-len(h) % 8)
    hlen = 0
    for _ in range(4):  # the header length depends on the padding and back
        entries, chunks, off, npad = [], [], 0, 0
        for k, (dt, shape, raw) in tensors.items():
            gap = (-(8 + hlen + off)) % align if align else 0
            if gap:
                entries.append(("__pad%d" % npad, "U8", [gap], off, off + gap))
                chunks.append(bytes(gap))
                off += gap
                npad += 1
            entries.append((k, dt, shape, off, off + len(raw)))
            chunks.append(raw)
            off += len(raw)
        h = header(entries)
        if len(h) == hlen:
            break
        hlen = len(h)
    return struct.pack("<Q", len(h)) + h + b"".join(chunks)


ITEM = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I64": 8}


def take(t, dim, n):
    """The first n entries of tensor t along dim."""
    dt, shape, raw = t
    if shape[dim] <= n:
        return t
    outer = 1
    for d in shape[:dim]:
        outer *= d
    inner = ITEM[dt]
    for d in shape[dim + 1:]:
        inner *= d
    step, keep = shape[dim] * inner, n * inner
    out = b"".join(raw[o * step:o * step + keep] for o in range(outer))
    return (dt, shape[:dim] + [n] + shape[dim + 1:], out)


def shrink_packed(cfg, tensors, vocab=8, inter=64, planes=2):
    """One layer, `vocab` rows of the embedding/head tables, intermediate size
    `inter` (a multiple of 64 so no padding bits need clearing) and at most
    `planes` bit planes per linear: still a valid packed model."""
    cfg = dict(cfg, num_hidden_layers=1, vocab_size=vocab, intermediate_size=inter)
    q = cfg["quantization_config"]
    cfg["quantization_config"] = {k: q[k] for k in
                                  ("quant_method", "format", "format_version", "abits",
                                   "scale_block_cols", "max_planes") if k in q}
    out = {}
    for k, t in tensors.items():
        if k.startswith("__pad") or (k.startswith("model.layers.") and
                                     not k.startswith("model.layers.0.")):
            continue
        if k.startswith(("model.embed_tokens.", "lm_head.")):
            t = take(t, 0, vocab)
        lin = k.rsplit(".", 1)
        if k.startswith("model.layers.0.mlp."):
            name, part = lin
            if name.endswith(("gate_proj", "up_proj")):  # output rows
                if part in ("qweight", "alpha", "mu"):
                    t = take(t, 1, inter)
                elif part in ("psp_a", "bias"):
                    t = take(t, 0, inter)
            else:  # down_proj: input columns
                if part == "qweight":
                    t = take(t, 2, inter // 8)
                elif part in ("alpha", "mu"):
                    t = take(t, 2, 1)
                elif part == "psp_b":
                    t = take(t, 1, inter)
                elif part in ("okt_r1", "okt_r2"):  # square factors of 64 = 8 x 8
                    t = tensors["model.layers.0.mlp.gate_proj." + part]
        if k.endswith((".qweight", ".alpha", ".mu")):
            t = take(t, 0, planes)
        out[k] = t
    return cfg, out


def packed_seeds(packed_dirs):
    total = 0
    for i, d in enumerate(packed_dirs):
        cfg = json.load(open(os.path.join(d, "config.json")))
        tensors, meta = read_st(os.path.join(d, "model.safetensors"))
        cfg, tensors = shrink_packed(cfg, tensors)
        c = json.dumps(cfg, separators=(",", ":")).encode()
        name = os.path.basename(os.path.normpath(d))
        for align in ((64, 0) if i == 0 else (64,)):  # unaligned (copied planes): first only
            st = write_st(tensors, meta, align)
            put("packed_loader", "%s%s" % (name, "_aligned" if align else "_unaligned"),
                struct.pack("<I", len(c)) + c + st)
            total += 4 + len(c) + len(st)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("--packed", nargs="*", default=[])
    ap.add_argument("--settings")
    a = ap.parse_args()
    config_seeds(a.shared)
    tokenizer_seeds(a.shared)
    tasks_seeds(a.shared)
    resume_seeds(a.settings)
    if a.packed:
        print("packed seed bytes:", packed_seeds(a.packed))


if __name__ == "__main__":
    main()
