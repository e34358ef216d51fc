#!/usr/bin/env python3
"""Runs bwla quantization grids on a model and writes Markdown tables into
docs/RESULTS.md (between <!-- BEGIN name --> / <!-- END name --> markers).

  bench/results_table.py baselines   # methods x A16/A8/A6/A4 (one seed)
  bench/results_table.py ablation    # BWLA parts x A16/A6/A4, mean ± std over seeds
  bench/results_table.py fp32        # FP32 perplexity on the full test file
  bench/results_table.py eval        # zero-shot tasks (full sets)

Every cell re-runs `bwla quantize ... --ppl-data` with the same calibration.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

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
    out = os.path.join(a.work, "q")
    cmd = [a.bwla, "quantize", a.model, "-o", out, "--abits", str(abits), "--seed", str(seed),
           "--calib", a.calib, "--nsamples", str(a.nsamples), "--seqlen", str(a.seqlen),
           "--ppl-data", a.data, "--ppl-ctx", str(a.ctx), "--ppl-windows", str(a.windows),
           "-t", str(a.threads), "--json", "-q", "--no-resume", "--ppl-no-fp"] + method_args
    t = time.time()
    j = sh(cmd)
    j["wall"] = time.time() - t
    print(f"  {' '.join(method_args)} A{abits} seed {seed}: ppl {j['ppl_quantized']:.2f} "
          f"bits {j['bits_per_weight']:.3f} ({j['wall']:.0f}s)", file=sys.stderr)
    return j

def header(a, extra=""):
    return (f"Model `{a.model}`; calibration {a.calib} {a.nsamples}x{a.seqlen} tokens; "
            f"WikiText-2 test PPL over the first {a.windows} windows of {a.ctx} tokens; "
            f"{a.threads} thread(s) on {cpu_name()} ({os.cpu_count()} cores). {extra}\n"
            f"Command: `{' '.join(sys.argv)}`\n")

BASELINES = [
    ("RTN-sign (XNOR)", ["--method", "rtn-sign"]),
    ("GPTQ 1-bit", ["--method", "gptq", "--wbits", "1"]),
    ("BiLLM", ["--method", "billm"]),
    ("ARB-LLM (arb)", ["--method", "arb"]),
    ("ARB-LLM_X (arb-x)", ["--method", "arb-x"]),
    ("ARB-LLM_RC (arb-rc)", ["--method", "arb-rc"]),
    ("Hadamard + arb-x", ["--method", "arb-x", "--transform", "hadamard"]),
    ("BWLA (OKT + PSP)", ["--method", "bwla"]),
]

ABLATION = [
    ("binarizer only (no OKT, no PSP)", ["--method", "bwla", "--no-okt", "--no-psp"]),
    ("OKT only", ["--method", "bwla", "--no-psp"]),
    ("PSP only", ["--method", "bwla", "--no-okt"]),
    ("OKT + PSP (BWLA default)", ["--method", "bwla"]),
    ("OKT + PSP, Cayley M-step", ["--method", "bwla", "--mstep", "cayley"]),
    ("OKT + PSP, binarizer rtn-sign", ["--method", "bwla", "--binarizer", "rtn-sign"]),
    ("OKT + PSP, binarizer gptq", ["--method", "bwla", "--binarizer", "gptq"]),
    ("OKT + PSP, binarizer billm", ["--method", "bwla", "--binarizer", "billm"]),
]

def baselines(a):
    abits = [16, 8, 6, 4]
    rows, fp = [], fp_ppl(a)
    for name, args in BASELINES:
        cells, bits, secs = [], None, []
        for ab in abits:
            j = quantize(a, args, ab, a.seed)
            cells.append(j["ppl_quantized"])
            bits = j["bits_per_weight"]
            secs.append(j["seconds"])
        rows.append((name, cells, bits, statistics.median(secs)))
    out = header(a, "Bits per weight count signs, every fp16 scale/mean, bitmaps, rotations and low-rank factors of the decoder linears.")
    out += "\n| method | bits/weight | W1A16 | W1A8 | W1A6 | W1A4 | quantize s |\n|---|---:|---:|---:|---:|---:|---:|\n"
    out += f"| FP32 | 32 | {fp:.2f} | – | – | – | – |\n"
    for name, cells, bits, s in rows:
        out += f"| {name} | {bits:.3f} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {s:.1f} |\n"
    return out

def ablation(a):
    abits = [16, 6, 4]
    seeds = list(range(a.seeds))
    out = header(a, f"Each cell: mean ± std over calibration seeds {seeds}. FP32: {fp_ppl(a):.2f}.")
    out += "\n| configuration | bits/weight | W1A16 | W1A6 | W1A4 |\n|---|---:|---:|---:|---:|\n"
    for name, args in ABLATION:
        cells, bits = [], None
        for ab in abits:
            v = []
            for s in seeds:
                j = quantize(a, args, ab, s)
                v.append(j["ppl_quantized"])
                bits = j["bits_per_weight"]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.2f} ± {sd:.2f}")
        out += f"| {name} | {bits:.3f} | " + " | ".join(cells) + " |\n"
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
    p.add_argument("table", choices=["baselines", "ablation", "fp32", "eval"])
    p.add_argument("--bwla", default=os.path.join(ROOT, "build", "bwla"))
    p.add_argument("--model", default="../shared/models/stories260K-hf")
    p.add_argument("--data", default="../shared/data/wikitext-2-raw/wiki.test.raw")
    p.add_argument("--calib", default="c4")
    p.add_argument("--nsamples", type=int, default=64)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--windows", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="/tmp/bwla-results")
    p.add_argument("--limit", type=int, default=0, help="eval: items per task (0 = all)")
    p.add_argument("--from-json", default="", help="eval: format this saved `bwla eval --json` output")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    body = {"baselines": baselines, "ablation": ablation, "fp32": fp32, "eval": zeroshot}[a.table](a)
    write_section(a.out, a.table, body)
    print(body)

if __name__ == "__main__":
    main()
