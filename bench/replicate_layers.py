#!/usr/bin/env python3
"""A packed (or any safetensors) bwla model with N layers made of copies of its
layer 0: for decode-speed measurements at a depth whose quantization would take
hours (e.g. the Llama-2-7B shape: one layer quantized, 32 layers benchmarked).

  bench/replicate_layers.py SRC_DIR -o OUT_DIR --layers N

Every model.layers.{l}.* tensor of OUT is a byte copy of model.layers.0.*; the
other tensors (embeddings, final norm, head) and every other file are copied;
config.json gets num_hidden_layers = N and, in quantization_config,
"replicated_layers_from": "layer 0 of SRC_DIR" so that no one mistakes the
result for a quantized model (its outputs mean nothing; its speed is that of
an N-layer model of the same layout, since each layer's tensors are separate
bytes in the file, read once per token). Tensor data is 64-byte aligned, as
bwla pack writes it, so the loader maps the sign planes in place.
Refuses to write into an existing directory.
"""
import argparse, json, os, shutil, struct, sys


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--layers", type=int, required=True)
    a = p.parse_args()
    if a.layers < 1:
        sys.exit("--layers must be >= 1")
    if os.path.exists(a.out):
        sys.exit(f"{a.out} exists; refusing to overwrite it")
    st = os.path.join(a.src, "model.safetensors")
    hdr, base = read_header(st)
    meta = hdr.pop("__metadata__", None)
    layer0 = {k: v for k, v in hdr.items() if k.startswith("model.layers.0.")}
    if not layer0:
        sys.exit(f"{st}: no model.layers.0.* tensors")
    other = {k: v for k, v in hdr.items() if not k.startswith("model.layers.")}
    plan = []  # (name, dtype, shape, src_begin, src_end)
    for k, v in other.items():
        plan.append((k, v["dtype"], v["shape"], *v["data_offsets"]))
    for l in range(a.layers):
        for k, v in layer0.items():
            plan.append(("model.layers.%d." % l + k[len("model.layers.0."):], v["dtype"], v["shape"],
                         *v["data_offsets"]))
    out_hdr, off = {}, 0
    for name, dt, shape, b, e in plan:
        off = (off + 63) // 64 * 64
        out_hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + (e - b)]}
        off += e - b
    if meta is not None:
        out_hdr["__metadata__"] = meta
    hj = json.dumps(out_hdr, separators=(",", ":")).encode()
    hj += b" " * ((64 - (8 + len(hj)) % 64) % 64)  # data buffer starts 64-byte aligned
    tmp = a.out + ".tmp"
    if os.path.exists(tmp):
        sys.exit(f"{tmp} exists (an earlier run's leftover?); remove it first")
    os.makedirs(tmp)
    with open(st, "rb") as src, open(os.path.join(tmp, "model.safetensors"), "wb") as dst:
        dst.write(struct.pack("<Q", len(hj)))
        dst.write(hj)
        pos = 0
        for name, dt, shape, b, e in plan:
            start = out_hdr[name]["data_offsets"][0]
            dst.write(b"\0" * (start - pos))
            src.seek(base + b)
            left = e - b
            while left:
                chunk = src.read(min(left, 1 << 24))
                dst.write(chunk)
                left -= len(chunk)
            pos = start + (e - b)
    for f in os.listdir(a.src):
        if f not in ("model.safetensors", "config.json", ".bwla-output") and os.path.isfile(os.path.join(a.src, f)):
            shutil.copy(os.path.join(a.src, f), os.path.join(tmp, f))
    with open(os.path.join(a.src, "config.json")) as f:
        cfg = json.load(f)
    cfg["num_hidden_layers"] = a.layers
    cfg.setdefault("quantization_config", {})["replicated_layers_from"] = f"layer 0 of {a.src}"
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    os.rename(tmp, a.out)
    print(f"wrote {a.out}: {a.layers} copies of layer 0 of {a.src} ({off} data bytes)")


if __name__ == "__main__":
    main()
