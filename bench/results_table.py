#!/usr/bin/env python3
"""Runs bwla quantization grids on a model and writes Markdown tables into
docs/RESULTS.md (between <!-- BEGIN name --> / <!-- END name --> markers).

  bench/results_table.py baselines   # methods x A16/A8/A6/A4 (one seed)
  bench/results_table.py ablation    # BWLA parts x A16/A6/A4, mean ± std over seeds
  bench/results_table.py targets --seeds 6   # the quality targets (W1A6)
  bench/results_table.py fp32        # FP32 perplexity on the full test file
  bench/results_table.py eval        # zero-shot tasks (full sets)
  bench/results_table.py qtime --nsamples 64 --seqlen 512 --threads 2
                                     # quantization time / RSS on random real-shape checkpoints

Every cell re-runs `bwla quantize` with the same calibration, then scores the
output with `bwla ppl OUT --kld-base MODEL` (PPL, and KL divergence against
the FP32 model over the same windows: far less seed noise than PPL on small
models). Sections are named per model (e.g. `baselines-mixtext-8m`).
"""
import argparse, concurrent.futures, hashlib, json, os, platform, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)

def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

def fp_ppl(a):
    j = sh([a.bwla, "ppl", a.model, "--data", a.data, "--ctx", str(a.ctx), "--max-windows",
            str(a.windows), "-t", str(a.threads), "--json", "-q"])
    return j["ppl"]

def quantize(a, method_args, abits, seed):
    """One grid cell. Results are cached in a.work by their full command line, so an
    interrupted grid resumes and cells shared between tables run once."""
    key = hashlib.sha1(json.dumps(["kld", a.model, a.calib, a.nsamples, a.seqlen, a.data, a.ctx, a.windows,
                                   a.threads, method_args, abits, seed]).encode()).hexdigest()[:16]
    cache = os.path.join(a.work, f"cell-{key}.json")
    if os.path.exists(cache):
        return json.load(open(cache))
    out = os.path.join(a.work, f"q-{key}")
    cmd = [a.bwla, "quantize", a.model, "-o", out, "--abits", str(abits), "--seed", str(seed),
           "--calib", a.calib, "--nsamples", str(a.nsamples), "--seqlen", str(a.seqlen),
           "-t", str(a.threads), "--json", "-q", "--no-resume"] + method_args
    t = time.time()
    j = sh(cmd)
    j["wall"] = time.time() - t
    k = sh([a.bwla, "ppl", out, "--kld-base", a.model, "--data", a.data, "--ctx", str(a.ctx),
            "--max-windows", str(a.windows), "-t", str(a.threads), "--json", "-q"])
    j["ppl_quantized"] = k["ppl"]
    for f in ("mean_kld", "kld_stderr", "p99_kld", "top1_agreement", "ppl_base"):
        j[f] = k[f]
    print(f"  {' '.join(method_args)} A{abits} seed {seed}: ppl {j['ppl_quantized']:.2f} "
          f"KLD {j['mean_kld']:.4f} bits {j['bits_per_weight']:.3f} ({j['wall']:.0f}s)",
          file=sys.stderr, flush=True)
    subprocess.run(["rm", "-rf", out])
    with open(cache + ".tmp", "w") as f:
        json.dump(j, f)
    os.replace(cache + ".tmp", cache)
    return j

def run_cells(a, cells):
    """cells: list of (method_args, abits, seed) -> results in the same order, a.jobs at a time."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        return list(ex.map(lambda c: quantize(a, *c), cells))

def mean_sd(v):
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

def header(a, extra=""):
    return (f"Model `{a.model}`; calibration {a.calib} {a.nsamples}x{a.seqlen} tokens; "
            f"WikiText-2 test PPL over the first {a.windows} windows of {a.ctx} tokens; "
            f"{a.threads} thread(s) on {cpu_name()} ({os.cpu_count()} cores). {extra}\n"
            f"Command: `{' '.join(sys.argv)}`\n")

# One α, μ per row for every one-plane row (bwla's default layout): the
# one-plane baselines get the same scales as BWLA.
ROW = ["--block-size", "1048576"]

BASELINES = [
    ("RTN-sign (XNOR)", ["--method", "rtn-sign"]),
    ("GPTQ 1-bit", ["--method", "gptq", "--wbits", "1"]),
    ("ARB-X, one plane", ["--method", "arb-x", "--no-groups"] + ROW),
    ("Hadamard + ARB-X, one plane", ["--method", "arb-x", "--no-groups", "--transform", "hadamard"] + ROW),
    ("Hadamard + ARB-X, one plane + sign refinement", ["--method", "arb-x", "--no-groups", "--transform", "hadamard", "--sign-refine", "2"] + ROW),
    ("BWLA (default: OKT + PSP + ARB-X, one plane + sign refinement)", ["--method", "bwla"]),
    ("BiLLM (column groups)", ["--method", "billm"]),
    ("ARB-LLM (arb, column groups)", ["--method", "arb"]),
    ("ARB-LLM_X (arb-x, column groups)", ["--method", "arb-x"]),
    ("ARB-LLM_RC (arb-rc, column groups)", ["--method", "arb-rc"]),
    ("Hadamard + arb-x (column groups)", ["--method", "arb-x", "--transform", "hadamard"]),
    ("BWLA --groups (OKT + PSP + arb-x with column groups)", ["--method", "bwla", "--groups"]),
]

ABLATION = [
    ("BWLA default (OKT + ARB-X, one plane, whole-row α, μ, PSP rank 0.005·width with 9 sign·α warm-up + 1 ARB-X alternation, 2 sign-refinement rounds on its residual)", ["--method", "bwla"]),
    ("no sign refinement (PSP then all 10 alternations ARB-X)", ["--method", "bwla", "--sign-refine", "0"]),
    ("4 sign-refinement rounds", ["--method", "bwla", "--sign-refine", "4"]),
    ("no PSP", ["--method", "bwla", "--no-psp"]),
    ("PSP with all 10 alternations ARB-X", ["--method", "bwla", "--psp-full-iters", "-1"]),
    ("no OKT (ARB-X + PSP + sign refinement)", ["--method", "bwla", "--no-okt"]),
    ("Hadamard instead of OKT", ["--method", "bwla", "--transform", "hadamard"]),
    ("OKT from a Hadamard start", ["--method", "bwla", "--hadamard-init"]),
    ("α, μ per 256 columns", ["--method", "bwla", "--block-size", "256"]),
    ("α, μ per 128 columns", ["--method", "bwla", "--block-size", "128"]),
    ("binarizer GPTQ 1-bit (XNOR row fit) instead of ARB-X", ["--method", "bwla", "--binarizer", "gptq"]),
    ("column groups (`--groups`: bitmaps + salient columns, PSP)", ["--method", "bwla", "--groups"]),
    ("column groups, no PSP", ["--method", "bwla", "--groups", "--no-psp"]),
]

def grid(a, configs, abits):
    """Mean/std PPL and KLD, bits and median quantize seconds per (config, abits) over a.seeds seeds."""
    seeds = list(range(a.seed, a.seed + a.seeds))
    cells = [(args, ab, s) for _, args in configs for ab in abits for s in seeds]
    res = iter(run_cells(a, cells))
    table = []
    for name, _ in configs:
        row = {"name": name, "cells": {}, "kld": {}, "top1": {}, "bits": None, "secs": []}
        for ab in abits:
            v, kl, t1 = [], [], []
            for _ in seeds:
                j = next(res)
                v.append(j["ppl_quantized"])
                kl.append(j["mean_kld"])
                t1.append(j["top1_agreement"])
                row["bits"] = j["bits_per_weight"]
                row["secs"].append(j["seconds"])
            row["cells"][ab] = mean_sd(v)
            row["kld"][ab] = mean_sd(kl)
            row["top1"][ab] = statistics.mean(t1)
        table.append(row)
    return table, seeds

def fmt_cell(m, sd, nseeds, digits=2):
    return f"{m:.{digits}f} ± {sd:.{digits}f}" if nseeds > 1 else f"{m:.{digits}f}"

def abits_list(a, default):
    return [int(x) for x in a.abits.split(",")] if a.abits else default

def table_rows(table, abits, seeds, first_cols):
    """PPL and KLD columns per activation width: `W1A6 PPL | W1A6 KLD | ...`."""
    out = ""
    for r in table:
        cells = []
        for ab in abits:
            cells.append(fmt_cell(*r["cells"][ab], len(seeds)))
            cells.append(fmt_cell(*r["kld"][ab], len(seeds), 4))
        out += f"| {r['name']} | {r['bits']:.3f} | " + " | ".join(cells) + first_cols(r) + " |\n"
    return out

def table_head(first, abits, extra=""):
    cols = "".join(f" W1A{ab} PPL | W1A{ab} KLD |" for ab in abits)
    n = 2 + 2 * len(abits) + (1 if extra else 0)
    return (f"\n| {first} | bits/weight |{cols}{extra}\n|---|" + "---:|" * (n - 1) + "\n")

def baselines(a):
    abits = abits_list(a, [16, 8, 6, 4])
    fp = fp_ppl(a)
    table, seeds = grid(a, BASELINES, abits)
    out = header(a, f"Each cell: WikiText-2 PPL and mean KL(FP32 ‖ quantized) per token over the "
                 f"same windows (`bwla ppl --kld-base`), mean ± std over calibration seeds {seeds}. "
                 "Bits per weight count signs, every scale/mean, column-group bitmaps, rotations "
                 "and low-rank factors of the decoder linears (fp32 side tensors counted as stored).")
    out += table_head("method", abits, " quantize s |")
    fp_cells = [f"{fp:.2f}", "0"] + ["–", "–"] * (len(abits) - 1)
    out += "| FP32 | 32 | " + " | ".join(fp_cells) + " | – |\n"
    out += table_rows(table, abits, seeds, lambda r: f" | {statistics.median(r['secs']):.1f}")
    return out

def ablation(a):
    abits = abits_list(a, [16, 6, 4])
    table, seeds = grid(a, ABLATION, abits)
    out = header(a, f"Each cell: PPL and mean KL(FP32 ‖ quantized) per token, mean ± std over "
                 f"calibration seeds {seeds}. FP32: {fp_ppl(a):.2f}.")
    out += table_head("configuration", abits)
    out += table_rows(table, abits, seeds, lambda r: "")
    return out

# Issue 18's quality targets: the default, the grouped layout and every
# one-plane baseline that is not BWLA (the "best other" is picked per model).
TARGETS = [
    ("BWLA default (one plane)", ["--method", "bwla"]),
    ("BWLA --groups", ["--method", "bwla", "--groups"]),
    ("RTN-sign (XNOR)", ["--method", "rtn-sign"]),
    ("GPTQ 1-bit", ["--method", "gptq", "--wbits", "1"]),
    ("ARB-X, one plane", ["--method", "arb-x", "--no-groups"] + ROW),
    ("Hadamard + ARB-X, one plane", ["--method", "arb-x", "--no-groups", "--transform", "hadamard"] + ROW),
]

def targets(a):
    """W1A6 PPL of the default against the grouped layout and the best other
    one-plane baseline (lowest mean PPL), mean ± std over a.seeds seeds."""
    abits = abits_list(a, [6])
    table, seeds = grid(a, TARGETS, abits)
    ab = abits[0]
    d, g = table[0], table[1]
    base = min(table[2:], key=lambda r: r["cells"][ab][0])
    out = header(a, f"W1A{ab}; mean ± std over calibration seeds {seeds}; FP32: {fp_ppl(a):.2f}.")
    out += table_head("configuration", [ab])
    out += table_rows(table, [ab], seeds, lambda r: "")
    out += (f"\nDefault / grouped PPL: **{d['cells'][ab][0] / g['cells'][ab][0]:.3f}×** (target ≤ 1.25×, "
            f"stretch 1.10×). Default / best other one-plane baseline ({base['name']}, "
            f"{base['bits']:.3f} bits): **{d['cells'][ab][0] / base['cells'][ab][0]:.3f}×** "
            f"(target ≤ 0.5×). Bits: default {d['bits']:.3f}, grouped {g['bits']:.3f}.\n")
    return out

def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs
               if f.endswith(".safetensors"))

def cpu_steal():
    """(steal, total) jiffies from /proc/stat: the hypervisor's share taken from this VM."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0), sum(v)

def qtime(a):
    """Quantization wall time and peak RSS on random real-shape bf16 checkpoints."""
    rows = []
    if a.pairs:
        pairs = [p.split(":") for p in a.pairs.split(",")]
    else:
        pairs = [(p, m) for p in a.presets.split(",") for m in a.methods.split(",")]
    for preset in dict.fromkeys(p for p, _ in pairs):
        model = os.path.join(a.work, f"random-{preset}-bf16")
        if not os.path.exists(os.path.join(model, "config.json")):
            tok = os.path.join(os.path.dirname(a.data), "..", "..", "tokenizers",
                               "smollm-bpe" if preset.startswith("smollm") else "llama2-sentencepiece")
            subprocess.run([a.bwla, "make-random", "--preset", preset, "--dtype", "bf16", "-o",
                            model, "--tokenizer", tok, "-q"], check=True)
        ckpt = dir_bytes(model)
        for method in [m for p, m in pairs if p == preset]:
            out = os.path.join(a.work, f"qtime-{preset}-{method}")
            cmd = [a.bwla, "quantize", model, "-o", out, "--method", method, "--wbits", "1",
                   "--abits", "6", "--calib", "random-tokens", "--nsamples", str(a.nsamples), "--seqlen",
                   str(a.seqlen), "-t", str(a.threads), "--json", "--no-resume"]
            load0 = os.getloadavg()[0]
            st0 = cpu_steal()
            t = time.time()
            r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}")
            j = json.loads(r.stdout)
            wall = time.time() - t
            st1 = cpu_steal()
            steal = 100.0 * (st1[0] - st0[0]) / max(1, st1[1] - st0[1])
            ph = {}
            rep_path = os.path.join(out, "quantize_report.json")  # the per-layer report
            rep = json.load(open(rep_path)) if os.path.exists(rep_path) else {}
            for lay in rep.get("layers", []):
                for k, v in lay.get("phase_seconds", {}).items():
                    ph[k] = ph.get(k, 0.0) + v
            rows.append((preset, method, ckpt, wall, j["peak_rss_bytes"], j["bits_per_weight"],
                         load0, os.getloadavg()[0], steal, ph))
            print(f"  {preset} {method}: {wall:.0f}s, RSS {j['peak_rss_bytes'] / 2**30:.2f} GiB",
                  file=sys.stderr, flush=True)
            subprocess.run(["rm", "-rf", out])
    out = (f"`bwla quantize RANDOM --method M --wbits 1 --abits 6 --calib random-tokens --nsamples "
           f"{a.nsamples} --seqlen {a.seqlen} -t {a.threads}` on random bf16 checkpoints "
           f"(`bwla make-random --preset P --dtype bf16`), {cpu_name()} ({os.cpu_count()} cores). "
           f"The machine is shared: the 1-minute load average before/after each run is shown; "
           f"times under load are upper bounds. `steal` is the share of CPU time the hypervisor "
           f"took from this VM during the run (from /proc/stat); phases are summed over layers "
           f"(fp32 reference outputs for the block error / forward through the quantized "
           f"linears in true-sequential order / streaming XᵀX and row samples / weight quantization "
           f"and clip search).\n"
           f"Command: `{' '.join(sys.argv)}`\n\n"
           "| shape | method | bf16 checkpoint | wall | reference / forward / stats / quantize | peak RSS | RSS / checkpoint | bits/weight | load before/after | steal |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for preset, method, ckpt, wall, rss, bits, l0, l1, steal, ph in rows:
        phs = " / ".join(f"{ph.get(k, 0) / 60:.1f}" for k in ("reference", "forward", "stats", "quantize"))
        out += (f"| {preset} | {method} | {ckpt / 2**30:.2f} GiB | {wall / 60:.1f} min | {phs} min | "
                f"{rss / 2**30:.2f} GiB | {rss / ckpt:.2f} | {bits:.3f} | {l0:.1f} / {l1:.1f} | {steal:.0f}% |\n")
    return out

def fp32(a):
    t = time.time()
    j = sh([a.bwla, "ppl", a.model, "--data", a.data, "--ctx", str(a.ctx), "-t", str(a.threads), "--json", "-q"])
    return (f"`{os.path.relpath(a.bwla, ROOT)} ppl {a.model} --data {a.data} --ctx {a.ctx} -t {a.threads}` on {cpu_name()}:\n\n"
            f"| model | ctx | windows | tokens in file | PPL | seconds | tokens/s |\n|---|---:|---:|---:|---:|---:|---:|\n"
            f"| {os.path.basename(a.model.rstrip('/'))} | {a.ctx} | {j['windows']} | {j['tokens_total']} | "
            f"{j['ppl']:.3f} | {j['seconds']:.1f} | {j['tokens_per_s']:.0f} |\n")

def zeroshot(a):
    cmd = [os.path.relpath(a.bwla, ROOT), "eval", a.model, "-t", str(a.threads), "--json", "-q"]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    if a.from_json:
        j = json.load(open(a.from_json))
    else:
        j = sh([a.bwla] + cmd[1:])
    out = (f"`{' '.join(cmd)}` on {cpu_name()} (lm-evaluation-harness conventions, "
           f"{'all items' if not a.limit else f'{a.limit} items per task'}; "
           f"total {j.get('seconds', 0):.0f} s):\n\n"
           "| task | n | acc | ± | acc_norm | ± | items/s |\n|---|---:|---:|---:|---:|---:|---:|\n")
    for task, r in j["results"].items():
        an = f"{r['acc_norm']:.4f} | {r['acc_norm_stderr']:.4f}" if "acc_norm" in r else "– | –"
        extra = f" (ppl {r['perplexity']:.1f})" if "perplexity" in r else ""
        out += (f"| {task}{extra} | {r['n']} | {r['acc']:.4f} | {r['acc_stderr']:.4f} | {an} | "
                f"{r.get('items_per_s', 0):.1f} |\n")
    avg = j.get("average_5", {})
    if avg.get("value") is not None:
        out += f"\nFive-task average (PIQA, ARC-e, WinoGrande acc; ARC-c, HellaSwag acc_norm): {avg['value']:.4f}\n"
    return out

def write_section(path, name, body):
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    b, e = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{b}\n{body}{e}"
    if b in text and e in text:
        text = text[:text.index(b)] + block + text[text.index(e) + len(e):]
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    open(path, "w").write(text)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=["baselines", "ablation", "targets", "fp32", "eval", "qtime"])
    p.add_argument("--bwla", default=os.path.join(ROOT, "build", "bwla"))
    p.add_argument("--model", default="../shared/models/stories260K-hf")
    p.add_argument("--data", default="../shared/data/wikitext-2-raw/wiki.test.raw")
    p.add_argument("--calib", default="c4")
    p.add_argument("--nsamples", type=int, default=32)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--windows", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1, help="grid cells run at once")
    p.add_argument("--presets", default="smollm2-135m,tinyllama-1.1b", help="qtime: random shapes")
    p.add_argument("--methods", default="arb-x,bwla", help="qtime: methods")
    p.add_argument("--pairs", default="", help="qtime: explicit preset:method list (overrides --presets x --methods)")
    p.add_argument("--work", default="/tmp/bwla-results")
    p.add_argument("--limit", type=int, default=0, help="eval: items per task (0 = all)")
    p.add_argument("--from-json", default="", help="eval: format this saved `bwla eval --json` output")
    p.add_argument("--abits", default="", help="baselines/ablation: activation widths, e.g. 16,6")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    body = {"baselines": baselines, "ablation": ablation, "targets": targets, "fp32": fp32, "eval": zeroshot,
            "qtime": qtime}[a.table](a)
    name = os.path.basename(a.model.rstrip("/"))
    write_section(a.out, f"{a.table}-{name}", body)
    print(body)

if __name__ == "__main__":
    main()
