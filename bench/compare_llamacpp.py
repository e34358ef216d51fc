#!/usr/bin/env python3
"""bwla vs llama.cpp on random SmolLM2-135M / TinyLlama-1.1B shapes, in one run.

  bench/compare_llamacpp.py --llama-cpp DIR [--models smollm2-135m,tinyllama-1.1b]
      [--threads 1,2] [--pp 128] [--tg 128] [--reps 3] [--work /tmp/bwla-compare]
      [--variants fp32,w1a8,w1a6,w1a8c,w1a6c,f16,q4_0,tq2_0,tq1_0,q1_0]
      [--results docs/RESULTS.md]

For each model shape and thread count it runs, back to back:
  * bwla fp32 (`bwla bench CKPT --bandwidth`: the read-bandwidth probe runs in the
    same process right after the model bench);
  * bwla W1A8 / W1A6 packed models (`bwla quantize --method bwla` with a small
    calibration, then `bwla pack`), packed twice from the same quantized model: with
    an int8 head and F16 PSP factors (`w1a8`, `w1a6`: `--head-dtype q8`) and compact
    (`w1a8c`, `w1a6c`: `--head-dtype q4 --psp-dtype i8`), when this bwla has `pack`;
    skipped otherwise (artefacts are cached: a packed model already at
    WORK/<preset>-bwla-w1a<A>-packed or ...-packed-q4p8 is used as is, so a slow
    quantization can be made once beforehand);
  * llama.cpp F16 / Q4_0 / TQ2_0 / TQ1_0 / Q1_0 (if its llama-quantize knows the
    type) through `bwla export-gguf` + `llama-quantize` + `llama-bench -o json`.
llama.cpp binaries come from DIR (or $LLAMA_CPP_DIR): DIR, DIR/bin or
DIR/build/bin. Without them the llama.cpp rows say "skipped". How those binaries
are obtained is not this repository's business. Benchmark only: nothing asserts
a speed. The Markdown table goes between <!-- BEGIN llamacpp --> / <!-- END
llamacpp --> in --results (unless --no-write); raw numbers to --json-out.
"""
import argparse, datetime, json, os, re, shlex, struct, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from results_table import cpu_name, cpu_steal, write_section  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
# Tokenizers the random checkpoints get (their vocab sizes match the presets).
TOKENIZER_DIR = {"smollm2-135m": "tokenizers/smollm-bpe"}
TOKENIZER_MODEL = {"tinyllama-1.1b": "tokenizers/llama2-sentencepiece/tokenizer.model",
                   "llama2-7b": "tokenizers/llama2-sentencepiece/tokenizer.model"}
LLAMA_TYPES = ["f16", "q4_0", "tq2_0", "tq1_0", "q1_0"]
# variant: (activation bits, `bwla pack` arguments, packed directory suffix)
BWLA_PACKED = {"w1a8": (8, ["--head-dtype", "q8"], ""), "w1a6": (6, ["--head-dtype", "q8"], ""),
               "w1a8c": (8, ["--head-dtype", "q4", "--psp-dtype", "i8"], "-q4p8"),
               "w1a6c": (6, ["--head-dtype", "q4", "--psp-dtype", "i8"], "-q4p8"),
               "w1a6d": (6, [], "-default")}
LABEL = {"fp32": "bwla fp32", "w1a8": "bwla W1A8 packed, q8 head", "w1a6": "bwla W1A6 packed, q8 head",
         "w1a8c": "bwla W1A8 packed, q4 head, i8 PSP", "w1a6c": "bwla W1A6 packed, q4 head, i8 PSP",
         "w1a6d": "bwla W1A6 packed, pack defaults",
         "f16": "llama.cpp F16", "q4_0": "llama.cpp Q4_0", "tq2_0": "llama.cpp TQ2_0",
         "tq1_0": "llama.cpp TQ1_0", "q1_0": "llama.cpp Q1_0"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# OpenMP's default wait policy (spin briefly, then sleep) for every engine: the
# OMP_WAIT_POLICY=passive the test suite uses makes each parallel region wake
# sleeping threads (measured: TinyLlama W1A8 2-thread decode 25-28 vs 30-38 t/s).
BENCH_ENV = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}


def run(cmd, capture=True, timeout=None):
    log("$ " + " ".join(shlex.quote(str(c)) for c in cmd))
    return subprocess.run([str(c) for c in cmd], capture_output=capture, text=True, timeout=timeout,
                          env=BENCH_ENV)


def first_line_error(r):
    lines = [l for l in (r.stderr or "").splitlines() if l.strip()]
    err = [l.strip() for l in lines if re.search(r"error|failed|not divisible", l, re.I)]
    return " / ".join(err[:2])[:300] if err else (lines or [f"exit {r.returncode}"])[-1][:300]


def find_bin(dirs, name):
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def gguf_decode_bytes(path):
    """Bytes of the tensors one decode step streams: all but token_embd (read one
    row per token), unless there is no output tensor (tied: token_embd is the head).
    Sizes come from the offsets in the GGUF header, so no type table is needed."""
    with open(path, "rb") as f:
        magic, version, n_t, n_kv = struct.unpack("<IIQQ", f.read(24))
        if magic != 0x46554747:
            raise ValueError(f"{path}: not a GGUF file")

        def s():
            (n,) = struct.unpack("<Q", f.read(8))
            return f.read(n).decode("utf-8", "replace")

        sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
        align = 32

        def skip(t):
            if t == 8:
                s()
            elif t == 9:
                et, n = struct.unpack("<IQ", f.read(12))
                if et == 8:
                    for _ in range(n):
                        s()
                else:
                    f.seek(sizes[et] * n, 1)
            else:
                f.seek(sizes[t], 1)

        for _ in range(n_kv):
            key = s()
            (t,) = struct.unpack("<I", f.read(4))
            if key == "general.alignment" and t == 4:
                (align,) = struct.unpack("<I", f.read(4))
            else:
                skip(t)
        infos = []
        for _ in range(n_t):
            name = s()
            (nd,) = struct.unpack("<I", f.read(4))
            f.seek(8 * nd, 1)
            _typ, off = struct.unpack("<IQ", f.read(12))
            infos.append((off, name))
        data_start = (f.tell() + align - 1) // align * align
    end = os.path.getsize(path) - data_start
    infos.sort()
    size = {}
    for i, (off, name) in enumerate(infos):
        size[name] = (infos[i + 1][0] if i + 1 < len(infos) else end) - off
    tied = "output.weight" not in size
    return sum(v for k, v in size.items() if tied or k != "token_embd.weight"), sum(size.values())


class Runner:
    def __init__(self, a):
        self.a = a
        self.notes = []
        self.export_err = {}
        self.results = []  # dicts: model, threads, variant, pp, tg, decode_bytes, ...

    def note(self, msg):
        if msg not in self.notes:
            self.notes.append(msg)
        log("note: " + msg)

    # ---- artefacts (cached in the work dir) -------------------------------------------------
    def checkpoint(self, preset):
        d = os.path.join(self.a.work, f"{preset}-bf16")
        if not os.path.isfile(os.path.join(d, "model.safetensors")):
            cmd = [self.a.bwla, "make-random", "--preset", preset, "--dtype", "bf16", "--seed", "1",
                   "-o", d]
            if preset in TOKENIZER_DIR:
                cmd += ["--tokenizer", os.path.join(SHARED, TOKENIZER_DIR[preset])]
            r = run(cmd)
            if r.returncode != 0:
                sys.exit(f"make-random failed: {r.stderr[-2000:]}")
        return d

    def gguf(self, preset, ckpt, typ):
        f16 = os.path.join(self.a.work, f"{preset}-f16.gguf")
        if preset in self.export_err:
            return None, self.export_err[preset]
        if not os.path.isfile(f16):
            cmd = [self.a.bwla, "export-gguf", ckpt, "-o", f16, "--dtype", "f16"]
            if preset in TOKENIZER_MODEL and not os.path.isfile(os.path.join(ckpt, "tokenizer.json")):
                cmd += ["--tokenizer-model", os.path.join(SHARED, TOKENIZER_MODEL[preset])]
            r = run(cmd)
            if r.returncode != 0:
                self.export_err[preset] = "export-gguf failed: " + first_line_error(r)
                return None, self.export_err[preset]
        if typ == "f16":
            return f16, None
        out = os.path.join(self.a.work, f"{preset}-{typ}.gguf")
        if not os.path.isfile(out):
            r = run([self.llama_quantize, f16, out, typ.upper(), str(max(self.threads))])
            if r.returncode != 0:
                return None, "llama-quantize failed: " + first_line_error(r)
            fallback = sorted({l.strip() for l in (r.stdout + r.stderr).splitlines()
                               if "fallback" in l.lower()})
            if fallback:
                self.note(f"{preset} {typ.upper()}: llama-quantize used a fallback type for tensors "
                          f"whose rows do not fit its block size ({len(fallback)} message(s), e.g. "
                          f"`{fallback[0][:160]}`)")
        return out, None

    def packed(self, preset, ckpt, abits, pack_args, suffix):
        q = os.path.join(self.a.work, f"{preset}-bwla-w1a{abits}")
        p = q + "-packed" + suffix
        if os.path.isfile(os.path.join(p, "config.json")):
            return p, None
        if not os.path.isfile(os.path.join(q, "config.json")):
            try:
                r = run([self.a.bwla, "quantize", ckpt, "--method", "bwla", "--wbits", "1", "--abits",
                         str(abits), "-o", q, "--nsamples", str(self.a.nsamples), "--seqlen",
                         str(self.a.seqlen), "-t", str(max(self.threads)), "-q"]
                        + shlex.split(self.a.quant_args), timeout=self.a.quant_timeout)
            except subprocess.TimeoutExpired:
                return None, f"bwla quantize did not finish within --quant-timeout {self.a.quant_timeout} s"
            if r.returncode != 0:
                return None, "bwla quantize failed: " + first_line_error(r)
        r = run([self.a.bwla, "pack", q, "-o", p] + pack_args + shlex.split(self.a.pack_args))
        if r.returncode != 0:
            return None, "bwla pack failed: " + first_line_error(r)
        return p, None

    def describe_packed(self, preset, v, path):
        """One note per packed model: how it was quantized and packed (from its config)."""
        try:
            with open(os.path.join(path, "config.json")) as f:
                qc = json.load(f)["quantization_config"]
        except (OSError, KeyError, ValueError):
            return
        wq = qc.get("weight_quantizer", {})
        okt = qc.get("okt", {})
        pb = qc.get("packed_bytes", {})
        self.note(
            f"{preset} {LABEL[v]}: `{path}`: method {qc.get('method')} (binarizer "
            f"{qc.get('binarizer', wq.get('method'))}, groups {wq.get('groups')}, transform "
            f"{qc.get('transform')}{', OKT iters ' + str(okt.get('iters')) if okt else ''}, PSP "
            f"{'rank ratio ' + str(qc.get('psp_rank_ratio')) + ', iters ' + str(qc.get('psp_iters')) if qc.get('psp') else 'off'}), "
            f"W1A{qc.get('abits')}, calibration {qc.get('calibration', {}).get('source')} "
            f"{qc.get('calibration', {}).get('segments')}×{qc.get('calibration', {}).get('seq_len')}; "
            f"packed v{qc.get('format_version')}: {qc.get('bits_per_weight', 0):.3f} bits per decoder "
            f"weight (every side tensor counted: scales {qc.get('scale_dtype')}, OKT factors, PSP "
            f"{qc.get('psp_dtype', qc.get('scale_dtype'))}), "
            f"{pb.get('decoder_linears', 0) / 2**20:.1f} MiB decoder linears; embeddings "
            f"{qc.get('embedding_dtype')} {pb.get('embeddings', 0) / 2**20:.1f} MiB, head "
            f"{qc.get('head_dtype')} {pb.get('lm_head', 0) / 2**20:.1f} MiB"
            f"{' (tied: the embedding table)' if not pb.get('lm_head') else ''}"
            f"{'; every layer a byte copy of one quantized layer (' + qc['replicated_layers_from'] + ', bench/replicate_layers.py): a speed measurement only, and the bytes above are per layer' if qc.get('replicated_layers_from') else ''}.")

    # ---- measurements -----------------------------------------------------------------------
    def bwla_bench(self, path, t, bandwidth):
        cmd = [self.a.bwla, "bench", path, "-t", t, "--pp", self.a.pp, "--tg", self.a.tg, "--reps",
               self.a.reps, "--json", "-q"]
        if bandwidth:
            cmd.append("--bandwidth")
        r = run(cmd)
        if r.returncode != 0:
            return None, "bwla bench failed: " + first_line_error(r)
        j = json.loads(r.stdout)
        return {"pp": j.get(f"pp{self.a.pp}_tps"), "tg": j.get(f"tg{self.a.tg}_tps"),
                "decode_bytes": j.get("decode_bytes_per_token"), "bpw": j.get("bits_per_weight"),
                "bw": j.get(f"bandwidth_{t}t_gbps"), "raw": j}, None

    def llama_bench(self, gguf, t):
        r = run([self.llama_bench_bin, "-m", gguf, "-p", self.a.pp, "-n", self.a.tg, "-t", t, "-r",
                 self.a.reps, "-o", "json"])
        if r.returncode != 0:
            return None, "llama-bench failed: " + first_line_error(r)
        recs = json.loads(r.stdout)
        pp = [x["avg_ts"] for x in recs if x.get("n_prompt", 0) > 0 and x.get("n_gen", 0) == 0]
        tg = [x["avg_ts"] for x in recs if x.get("n_gen", 0) > 0 and x.get("n_prompt", 0) == 0]
        dec, total = gguf_decode_bytes(gguf)
        n_params = recs[0].get("model_n_params") if recs else None
        self.llama_build = recs[0].get("build_commit") if recs else None
        return {"pp": pp[0] if pp else None, "tg": tg[0] if tg else None, "decode_bytes": dec,
                "file_tensor_bytes": total,
                "bpw": 8.0 * recs[0]["model_size"] / n_params if recs and n_params else None,
                "raw": recs}, None

    def main(self):
        a = self.a
        self.threads = [int(x) for x in a.threads.split(",")]
        variants = a.variants.split(",")
        llama_dirs = [a.llama_cpp, os.path.join(a.llama_cpp, "bin"),
                      os.path.join(a.llama_cpp, "build", "bin")] if a.llama_cpp else []
        self.llama_bench_bin = find_bin(llama_dirs, "llama-bench")
        self.llama_quantize = find_bin(llama_dirs, "llama-quantize")
        self.llama_build = None
        if not a.llama_cpp:
            self.note("llama.cpp: no --llama-cpp DIR / LLAMA_CPP_DIR given; llama.cpp rows skipped")
        elif not self.llama_bench_bin or not self.llama_quantize:
            self.note(f"llama.cpp: llama-bench/llama-quantize not found under {a.llama_cpp}; skipped")
            self.llama_bench_bin = None
        if self.llama_bench_bin:
            r = run([self.llama_quantize, "--help"])
            known = (r.stdout or "") + (r.stderr or "")
            for typ in ["q1_0", "tq1_0", "tq2_0"]:
                if typ in variants and not re.search(r"(?<![A-Z0-9_])" + typ.upper() + r"\b", known):
                    self.note(f"llama.cpp: this llama-quantize has no {typ.upper()}; row skipped")
                    variants.remove(typ)
        has_pack = run([a.bwla, "pack", "--help"]).returncode == 0
        if not has_pack and any(v in BWLA_PACKED for v in variants):
            self.note("bwla W1A8/W1A6 packed rows skipped: this bwla has no `pack` subcommand yet")

        os.makedirs(a.work, exist_ok=True)
        self.load_before = os.getloadavg()
        self.started = datetime.datetime.now(datetime.timezone.utc)
        for preset in a.models.split(","):
            ckpt = self.checkpoint(preset)
            paths = {}
            for v in variants:  # prepare everything first, then measure back to back
                if v == "fp32":
                    paths[v] = (ckpt, None)
                elif v in BWLA_PACKED:
                    paths[v] = self.packed(preset, ckpt, *BWLA_PACKED[v]) if has_pack else (None, "skipped")
                    if paths[v][0]:
                        self.describe_packed(preset, v, paths[v][0])
                elif v in LLAMA_TYPES:
                    paths[v] = self.gguf(preset, ckpt, v) if self.llama_bench_bin else (None, "skipped")
            # The bandwidth probe runs with the fp32 bench, or with the first bwla
            # variant when fp32 is not measured (e.g. a 7B shape, 27 GB in fp32).
            probe_variant = next((v for v in variants if v == "fp32" or v in BWLA_PACKED), None)
            for t in self.threads:
                for v in variants:
                    path, err = paths[v]
                    res = None
                    st0, tot0 = cpu_steal()
                    if path:
                        if v in LLAMA_TYPES:
                            res, err = self.llama_bench(path, str(t))
                        else:
                            res, err = self.bwla_bench(path, str(t), bandwidth=(v == probe_variant))
                    st1, tot1 = cpu_steal()
                    if err and err != "skipped":
                        self.note(f"{preset} {LABEL[v]} {t}T: {err}")
                    row = {"model": preset, "threads": t, "variant": v, "error": err,
                           "steal": (st1 - st0) / (tot1 - tot0) if tot1 > tot0 else None}
                    if res:
                        row.update({k: res[k] for k in res if k != "raw"})
                        row["raw"] = res["raw"]
                    self.results.append(row)
                    if self.a.json_out:  # partial results survive an interrupted run
                        with open(self.a.json_out, "w") as f:
                            json.dump({"results": self.results, "notes": self.notes}, f, indent=1)
        self.load_after = os.getloadavg()
        return self.render()

    # ---- table ------------------------------------------------------------------------------
    def render(self):
        a = self.a
        out = []
        cmd = "bench/compare_llamacpp.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        lb, la = self.load_before, self.load_after
        llama = a.llama_cpp_commit or self.llama_build or "unknown"
        out.append(f"`{cmd}` on {cpu_name()}, {os.cpu_count()} cores, "
                   f"{self.started:%Y-%m-%d %H:%M} UTC; load average (1/5/15 min) "
                   f"{lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f} before, {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} after. "
                   f"bwla {git_commit()}; llama.cpp {llama} (CPU build).\n")
        for preset in a.models.split(","):
            rows = [r for r in self.results if r["model"] == preset]
            out.append(f"\n**{preset} shape** (random bf16 checkpoint, `bwla make-random --preset {preset}`)\n\n")
            out.append(f"| threads | engine | pp{a.pp} t/s | tg{a.tg} t/s | bits/weight | MiB read/token "
                       f"| tg bound t/s | tg/bound | pp vs llama F16 | tg vs llama F16 | tg vs TQ2_0 | tg vs bwla fp32 | steal % |\n")
            out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for t in self.threads:
                trows = [r for r in rows if r["threads"] == t]
                bw = next((r.get("bw") for r in trows if r.get("bw")), None)
                ref = {r["variant"]: r for r in trows if r.get("pp") or r.get("tg")}

                def ratio(x, v, key):
                    y = ref.get(v, {}).get(key)
                    return f"{x / y:.2f}×" if x and y else "–"

                for r in trows:
                    if r.get("error") == "skipped" or (not r.get("pp") and not r.get("tg")):
                        why = "skipped" if r.get("error") == "skipped" else "failed (see notes)"
                        out.append(f"| {t} | {LABEL[r['variant']]} | {why} | | | | | | | | | | |\n")
                        continue
                    db = r.get("decode_bytes")
                    bound = bw * 1e9 / db if bw and db else None
                    bpw = r.get("bpw")
                    out.append(
                        f"| {t} | {LABEL[r['variant']]} | {fnum(r.get('pp'))} | {fnum(r.get('tg'), 2)} | "
                        f"{fnum(bpw, 2) if isinstance(bpw, (int, float)) else '–'} | "
                        f"{fnum(db / 2**20 if db else None)} | {fnum(bound, 2)} | "
                        f"{fnum(r['tg'] / bound if bound and r.get('tg') else None, 2)} | "
                        f"{ratio(r.get('pp'), 'f16', 'pp')} | {ratio(r.get('tg'), 'f16', 'tg')} | "
                        f"{ratio(r.get('tg'), 'tq2_0', 'tg')} | {ratio(r.get('tg'), 'fp32', 'tg')} | "
                        f"{fnum(100 * r['steal'] if r.get('steal') is not None else None, 0)} |\n")
                if bw:
                    out.append(f"| {t} | *read bandwidth* | | | | | {bw:.1f} GB/s | | | | | | |\n")
        out.append("\nRead bandwidth: `bwla bench --bandwidth` (compiled multi-stream read of a 1 GiB "
                   "buffer, median), in the same process right after the bwla fp32 model bench (or, without fp32, the first bwla packed bench) of that "
                   "row group. tg bound = bandwidth / bytes one decode step reads (bwla: "
                   "`decode_bytes_per_token` of `bwla bench`, fp32 weights for the fp32 path; llama.cpp: "
                   "GGUF tensor bytes except `token_embd`, which is read one row per token unless it is "
                   "also the output head); the KV cache is ignored. bits/weight: bwla's decoder linears "
                   "(16 = bf16 checkpoint computed in fp32; packed: every side tensor of the decoder "
                   "linears counted, embeddings and head listed in the notes); llama.cpp: file size × 8 / "
                   "parameters (embeddings and head included). llama.cpp pp/tg are `llama-bench -o json` avg_ts; "
                   "bwla's are medians of --reps runs. steal %: share of this VM's CPU time the "
                   "hypervisor took during that row (/proc/stat); rows with high steal are slowed, "
                   "and ratios between rows of different steal are unreliable.\n")
        if self.notes:
            out.append("\nNotes:\n" + "".join(f"- {n}\n" for n in self.notes))
        return "".join(out)


def fnum(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def git_commit():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The README's build directory (scripts/bootstrap.sh keeps it current).
    p.add_argument("--bwla", default=os.environ.get("BWLA", os.path.join(ROOT, "build", "bwla")))
    p.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP_DIR", ""))
    p.add_argument("--llama-cpp-commit", default="", help="llama.cpp commit to state in the table")
    p.add_argument("--work", default="/tmp/bwla-compare", help="checkpoints, GGUFs, packed models (cached)")
    # llama2-7b: quantizing all 32 layers takes hours here; put a packed model at
    # WORK/llama2-7b-bwla-w1a6-packed-default first (bench/replicate_layers.py).
    p.add_argument("--models", default="smollm2-135m,tinyllama-1.1b")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--pp", default="128")
    p.add_argument("--tg", default="128")
    p.add_argument("--reps", default="3")
    p.add_argument("--variants", default="fp32,w1a8,w1a6,w1a8c,w1a6c,f16,q4_0,tq2_0,tq1_0,q1_0")
    p.add_argument("--nsamples", default="8", help="calibration segments for the packed models")
    p.add_argument("--seqlen", default="128", help="calibration segment length")
    p.add_argument("--quant-args",
                   default="--no-groups --binarizer rtn-sign --okt-iters 2 --psp-iters 2 --calib random-tokens",
                   help="extra `bwla quantize` arguments. The default makes BWLA's packed layout "
                        "(OKT factors, one sign plane with whole-row α/μ, PSP branch) quickly: speed "
                        "depends on the layout, not on how well the weights were fitted")
    p.add_argument("--pack-args", default="", help="extra `bwla pack` arguments (head and PSP dtypes come from the variant)")
    p.add_argument("--quant-timeout", type=float, default=1800, help="seconds allowed per quantization")
    p.add_argument("--results", default=os.path.join(ROOT, "docs", "RESULTS.md"))
    p.add_argument("--section", default="llamacpp")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--json-out", default="", help="also write raw results here")
    a = p.parse_args()
    if not os.path.isfile(a.bwla):
        sys.exit(f"bwla binary not found: {a.bwla} (use --bwla)")
    r = Runner(a)
    table = r.main()
    print(table)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"results": r.results, "notes": r.notes, "load_before": r.load_before,
                       "load_after": r.load_after}, f, indent=1)
    if not a.no_write:
        write_section(a.results, a.section, table)
        log(f"wrote section '{a.section}' of {a.results}")


if __name__ == "__main__":
    main()
