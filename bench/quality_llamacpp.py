#!/usr/bin/env python3
"""Quality per honest bit: bwla's layouts against llama.cpp's own low-bit
quantizers, on the same model, the same WikiText-2 windows and the same scored
tokens.

  bench/quality_llamacpp.py --llama-cpp DIR [--model ../shared/models/mixtext-8m]
      [--types IQ1_S,IQ1_M,IQ2_XXS,Q2_K,TQ1_0] [--ctx 256] [--chunks 40]
      [--nsamples 128] [--seeds 2] [--work /tmp/bwla-quality] [--no-write]

What it runs (llama.cpp binaries from DIR, DIR/bin or DIR/build/bin; how they
were built is not this repository's business):
  1. `bwla export-gguf MODEL --dtype f32` (the FP32 reference for llama.cpp);
  2. `llama-imatrix` on the calibration text bwla uses (the documents of
     ../shared/data/c4/c4_sample.jsonl, --nsamples chunks of --ctx tokens);
  3. `llama-quantize --imatrix` to each type of --types this build has;
  4. `llama-perplexity --kl-divergence-base` on the FP32 GGUF (the first
     --chunks windows of --ctx tokens of wiki.test.raw), then
     `--kl-divergence` for each quantized GGUF: llama.cpp's PPL and KLD;
  5. bwla's layouts (quantize with --nsamples x --ctx c4 calibration, pack),
     scored by `bwla ppl PACKED --kld-base MODEL --llama-protocol`: BOS in
     front of each window, the second half scored, exactly the predictions
     llama-perplexity scores. The token ids of both tools are compared first
     (bwla `--tokens-out` against the ids stored in llama.cpp's KLD base file),
     and bwla's FP32 PPL under this protocol is printed next to llama.cpp's.
Bits are counted two ways for every row: bits per weight of the decoder
linears (q/k/v/o/gate/up/down, every side tensor included) and of the whole
file (8 x file bytes / all parameters). The table goes into docs/RESULTS.md
between <!-- BEGIN quality-llamacpp-MODEL --> markers, raw numbers into
docs/data/quality_llamacpp_MODEL.json and the Pareto plot (PPL against decoder
bits) into docs/img/pareto_MODEL.png (PLplot's Python module, Debian package
python3-plplot, run with /usr/bin/python3).
"""
import argparse, json, os, re, shlex, statistics, struct, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from results_table import cpu_name, write_section  # noqa: E402

# ggml type id -> (block bytes, block weights); ggml/src/ggml-common.h.
GGML_TYPES = {0: ("F32", 4, 1), 1: ("F16", 2, 1), 2: ("Q4_0", 18, 32), 3: ("Q4_1", 20, 32),
              6: ("Q5_0", 22, 32), 7: ("Q5_1", 24, 32), 8: ("Q8_0", 34, 32), 10: ("Q2_K", 84, 256),
              11: ("Q3_K", 110, 256), 12: ("Q4_K", 144, 256), 13: ("Q5_K", 176, 256),
              14: ("Q6_K", 210, 256), 15: ("Q8_K", 292, 256), 16: ("IQ2_XXS", 66, 256),
              17: ("IQ2_XS", 74, 256), 18: ("IQ3_XXS", 98, 256), 19: ("IQ1_S", 50, 256),
              20: ("IQ4_NL", 18, 32), 21: ("IQ3_S", 110, 256), 22: ("IQ2_S", 82, 256),
              23: ("IQ4_XS", 136, 256), 29: ("IQ1_M", 56, 256), 30: ("BF16", 2, 1),
              34: ("TQ1_0", 54, 256), 35: ("TQ2_0", 66, 256)}
DECODER_GGUF = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(shlex.quote(str(c)) for c in cmd))
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")
    return r


def gguf_tensors(path):
    """[(name, numel, ggml type)] from a GGUF file's header."""
    with open(path, "rb") as f:
        def u32(): return struct.unpack("<I", f.read(4))[0]
        def u64(): return struct.unpack("<Q", f.read(8))[0]
        def string(): return f.read(u64()).decode("utf-8", "replace")
        scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

        def skip(t):
            if t == 8:
                string()
            elif t == 9:
                et, n = u32(), u64()
                for _ in range(n):
                    skip(et)
            else:
                f.read(scalar[t])
        if f.read(4) != b"GGUF":
            sys.exit(f"{path}: not a GGUF file")
        u32()
        nt, nkv = u64(), u64()
        for _ in range(nkv):
            string()
            skip(u32())
        out = []
        for _ in range(nt):
            name = string()
            dims = [u64() for _ in range(u32())]
            t = u32()
            u64()
            n = 1
            for d in dims:
                n *= d
            out.append((name, n, t))
        return out


def gguf_bits(path):
    """(decoder-linear bits/weight, whole-file bits/parameter, type of the decoder linears)."""
    dec_bytes = dec_n = total_n = 0
    types = set()
    for name, n, t in gguf_tensors(path):
        total_n += n
        if name.startswith("blk.") and name.endswith(DECODER_GGUF):
            if t not in GGML_TYPES:
                sys.exit(f"{path}: tensor {name} has ggml type {t}, unknown to this script")
            _, bb, bw = GGML_TYPES[t]
            dec_bytes += n // bw * bb
            dec_n += n
            types.add(GGML_TYPES[t][0])
    return 8.0 * dec_bytes / dec_n, 8.0 * os.path.getsize(path) / total_n, "+".join(sorted(types)), total_n


def llama_bin(a, name):
    for d in (a.llama_cpp, os.path.join(a.llama_cpp, "bin"), os.path.join(a.llama_cpp, "build", "bin")):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    sys.exit(f"{name} not found under {a.llama_cpp} (DIR, DIR/bin or DIR/build/bin)")


def llama_kld(out):
    """Mean PPL(Q), Mean PPL(base) and Mean KLD from llama-perplexity --kl-divergence."""
    def grab(pat):
        m = re.search(pat, out)
        if not m:
            sys.exit(f"llama-perplexity output has no '{pat}':\n{out[-3000:]}")
        return float(m.group(1))
    return {"ppl": grab(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)"),
            "ppl_base": grab(r"Mean PPL\(base\)\s*:\s*([0-9.]+)"),
            "mean_kld": grab(r"Mean\s+KLD:\s*([0-9.]+)")}


def kld_base_tokens(path):
    with open(path, "rb") as f:
        if f.read(8) != b"_logits_":
            sys.exit(f"{path}: not a llama-perplexity KL-divergence base file")
        n_ctx, n_vocab, n_chunk = struct.unpack("<iii", f.read(12))
        return list(struct.unpack(f"<{n_ctx * n_chunk}i", f.read(4 * n_ctx * n_chunk))), n_ctx, n_chunk


BWLA_ROWS = [
    ("bwla BWLA default (one plane), W1A6", ["--method", "bwla", "--abits", "6"]),
    ("bwla BWLA default (one plane), W1A4", ["--method", "bwla", "--abits", "4"]),
    ("bwla BWLA, no PSP (one plane), W1A6", ["--method", "bwla", "--abits", "6", "--no-psp"]),
    ("bwla BWLA --groups, W1A6", ["--method", "bwla", "--abits", "6", "--groups"]),
    ("bwla ARB-X, column groups, W1A6", ["--method", "arb-x", "--abits", "6"]),
    ("bwla ARB-RC, column groups, W1A6", ["--method", "arb-rc", "--abits", "6"]),
]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP_DIR", ""), required=not os.environ.get("LLAMA_CPP_DIR"))
    p.add_argument("--bwla", default=os.path.join(ROOT, "build", "bwla"))
    p.add_argument("--model", default=os.path.join(os.path.dirname(ROOT), "shared", "models", "mixtext-8m"))
    p.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "wikitext-2-raw", "wiki.test.raw"))
    p.add_argument("--calib", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "c4", "c4_sample.jsonl"))
    p.add_argument("--types", default="IQ1_S,IQ1_M,IQ2_XXS,Q2_K,TQ1_0")
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--chunks", type=int, default=40)
    p.add_argument("--nsamples", type=int, default=128)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="/tmp/bwla-quality")
    p.add_argument("--results", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    name = os.path.basename(os.path.normpath(a.model))
    W = lambda f: os.path.join(a.work, f)
    t = str(a.threads)

    # 1-2. FP32 GGUF, calibration text, importance matrix.
    f32 = W(f"{name}-f32.gguf")
    if not os.path.exists(f32):
        run([a.bwla, "export-gguf", a.model, "-o", f32, "--dtype", "f32", "-q"])
    calib_txt = W("calib.txt")
    # The documents as bwla's calibration loader joins them (pipeline/calibration.cc).
    docs = []
    for line in open(a.calib):
        if line.strip():
            j = json.loads(line)
            docs.append(j["text"] if "text" in j else j["prefix"] + j.get("gold_completion", ""))
    with open(calib_txt, "w") as g:
        g.write("\n\n".join(docs))
    imatrix = W(f"{name}.imatrix")
    if not os.path.exists(imatrix):
        run([llama_bin(a, "llama-imatrix"), "-m", f32, "-f", calib_txt, "-o", imatrix, "-c", a.ctx,
             "--chunks", a.nsamples, "-t", t])
    # 4a. llama.cpp's FP32 base, then the token check.
    base = W(f"{name}-base.kld")
    r = run([llama_bin(a, "llama-perplexity"), "-m", f32, "-f", a.data, "-c", a.ctx, "-b", a.ctx,
             "--chunks", a.chunks, "--kl-divergence-base", base, "-t", t])
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr)
    llama_fp = float(m.group(1)) if m else float("nan")
    ltoks, n_ctx, n_chunk = kld_base_tokens(base)
    ids_file = W("bwla_ids.json")
    r = run([a.bwla, "ppl", a.model, "--data", a.data, "--ctx", a.ctx, "--max-windows", a.chunks,
             "--llama-protocol", "--tokens-out", ids_file, "--json", "-q", "-t", t])
    bwla_fp = json.loads(r.stdout)["ppl"]
    btoks = json.load(open(ids_file))["tokens"][: len(ltoks)]
    same = sum(x == y for x, y in zip(ltoks, btoks))
    log(f"token ids: {same}/{len(ltoks)} equal; FP32 PPL llama.cpp {llama_fp:.4f}, bwla {bwla_fp:.4f}")
    if same != len(ltoks):
        sys.exit("the two tokenizations differ: the scored tokens would not be the same")

    rows = []
    # 3-4b. llama.cpp quantizers.
    for ty in a.types.split(","):
        q = W(f"{name}-{ty}.gguf")
        if not os.path.exists(q):
            r = subprocess.run([llama_bin(a, "llama-quantize"), "--imatrix", imatrix, f32, q, ty, t],
                               capture_output=True, text=True)
            if r.returncode != 0:
                log(f"llama-quantize has no {ty} (or failed): {r.stderr.strip().splitlines()[-1:]}")
                continue
        r = run([llama_bin(a, "llama-perplexity"), "-m", q, "--kl-divergence-base", base,
                 "--kl-divergence", "-c", a.ctx, "-b", a.ctx, "-t", t])
        k = llama_kld(r.stdout + r.stderr)
        dec, whole, types, _ = gguf_bits(q)
        rows.append({"name": f"llama.cpp {ty} (imatrix)", "linear_types": types, "dec_bits": dec,
                     "file_bits": whole, "ppl": [k["ppl"]], "kld": [k["mean_kld"]],
                     "ppl_base": k["ppl_base"], "activations": "F32 (Q8_K dot products)"})
    _, f32_file_bits, _, n_params = gguf_bits(f32)
    # 5. bwla's layouts, same windows, same protocol.
    for label, args in BWLA_ROWS:
        ppls, klds, dec, file_bytes = [], [], None, None
        for seed in range(a.seeds):
            out, pk = W(f"bwla-q-{len(rows)}-{seed}"), W(f"bwla-p-{len(rows)}-{seed}")
            run([a.bwla, "quantize", a.model, "-o", out, "--seed", seed, "--calib", "c4",
                 "--shared", os.path.dirname(os.path.dirname(os.path.dirname(a.calib))),
                 "--nsamples", a.nsamples, "--seqlen", a.ctx, "-t", t, "-q", "--no-resume"] + args)
            j = json.loads(run([a.bwla, "pack", out, "-o", pk, "--json", "-q"]).stdout)
            dec, file_bytes = j["bits_per_weight"], j["file_bytes"]
            k = json.loads(run([a.bwla, "ppl", pk, "--kld-base", a.model, "--data", a.data, "--ctx",
                                a.ctx, "--max-windows", a.chunks, "--llama-protocol", "--json", "-q",
                                "-t", t]).stdout)
            ppls.append(k["ppl"])
            klds.append(k["mean_kld"])
        rows.append({"name": label, "linear_types": "bwla-packed", "dec_bits": dec,
                     "file_bits": 8.0 * file_bytes / n_params, "ppl": ppls, "kld": klds,
                     "ppl_base": bwla_fp, "activations": "per-token " + args[3] + "-bit"})
    rows.sort(key=lambda r: r["dec_bits"])

    def ms(v, d):
        return f"{statistics.mean(v):.{d}f}" + (f" ± {statistics.stdev(v):.{d}f}" if len(v) > 1 else "")
    body = (f"`{' '.join(sys.argv)}` on {cpu_name()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
            f"Model `{a.model}`; llama.cpp from `{a.llama_cpp}`; WikiText-2 test, the first {a.chunks} windows "
            f"of {a.ctx} tokens, scored as llama-perplexity scores them (BOS first, second half of each "
            f"window: {n_chunk * (n_ctx - 1 - n_ctx // 2)} predictions; the token ids of both tools are "
            f"identical). FP32 PPL on these tokens: llama.cpp {llama_fp:.3f}, bwla {bwla_fp:.3f}. "
            f"llama.cpp rows: its own PPL and KLD (`--kl-divergence`), importance matrix from the c4 "
            f"calibration text ({a.nsamples} chunks of {a.ctx}). bwla rows: packed models, "
            f"`bwla ppl --kld-base --llama-protocol`, mean ± std over calibration seeds 0..{a.seeds - 1} "
            f"(c4, {a.nsamples} x {a.ctx} tokens). Decoder bits: the q/k/v/o/gate/up/down weights and "
            f"all their side tensors; file bits: 8 x file bytes / {n_params} parameters (FP32 GGUF "
            f"{f32_file_bits:.2f}).\n\n"
            "| model / layout | decoder bits/weight | file bits/param | activations | PPL | PPL / its FP32 | KLD |\n"
            "|---|---:|---:|---|---:|---:|---:|\n")
    for r in rows:
        ratio = [x / r["ppl_base"] for x in r["ppl"]]
        body += (f"| {r['name']} | {r['dec_bits']:.3f} | {r['file_bits']:.3f} | {r['activations']} | "
                 f"{ms(r['ppl'], 2)} | {ms(ratio, 3)} | {ms(r['kld'], 4)} |\n")
    print(body)
    if a.no_write:
        return
    write_section(a.results, f"quality-llamacpp-{name}", body)
    data = os.path.join(ROOT, "docs", "data", f"quality_llamacpp_{name}.json")
    with open(data, "w") as f:
        json.dump({"rows": rows, "llama_fp32_ppl": llama_fp, "bwla_fp32_ppl": bwla_fp,
                   "command": sys.argv}, f, indent=1)
    png = os.path.join(ROOT, "docs", "img", f"pareto_{name}.png")
    plot = os.path.join(ROOT, "bench", "plot_pareto.py")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run(["/usr/bin/python3", plot, data, png, name], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        log(f"plot failed (needs python3-plplot): {r.stderr[-500:]}")
    else:
        log(f"wrote {png}")


if __name__ == "__main__":
    main()
