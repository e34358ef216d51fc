#!/usr/bin/python3
"""PPL (relative to each tool's own FP32) against decoder bits per weight, from
bench/quality_llamacpp.py's JSON: plot_pareto.py DATA.json OUT.png TITLE.
Uses PLplot (Debian python3-plplot) with its pngqt device, run offscreen."""
import json, math, statistics, sys

import plplot as pl


def main():
    data, png, title = sys.argv[1:4]
    rows = json.load(open(data))["rows"]
    xs = [r["dec_bits"] for r in rows]
    ys = [statistics.mean(r["ppl"]) / r["ppl_base"] for r in rows]
    pl.plsdev("pngqt")
    pl.plsfnam(png)
    pl.plspage(0, 0, 1200, 760, 0, 0)
    pl.plscolbg(255, 255, 255)
    pl.plscol0(15, 0, 0, 0)   # index 15 (default white) drawn black on the white page
    pl.plscol0(1, 200, 30, 30)  # llama.cpp
    pl.plscol0(9, 20, 60, 200)  # bwla
    pl.plinit()
    pl.plcol0(15)
    pl.plschr(0, 0.75)
    ly = [math.log10(y) for y in ys]
    # Logarithmic PPL axis (axis code 20): one bad row (TQ1_0) must not squash the rest.
    pl.plenv(0.8, max(xs) * 1.8, math.log10(0.95), max(ly) + 0.05, 0, 20)
    # Label heights: points whose labels would overlap (near in x and in log
    # PPL) get theirs pushed up, with a tick back to the point.
    gap = 0.022 * (max(ly) + 0.05 - math.log10(0.95)) / 0.8
    lab = {}
    for i in sorted(range(len(rows)), key=lambda i: ly[i]):
        y = ly[i]
        for j, yj in lab.items():
            if abs(xs[j] - xs[i]) < 1.6 and abs(yj - y) < gap:
                y = yj + gap
        lab[i] = y
    pl.pllab("bits per decoder weight (every side tensor counted)", "PPL / the tool's own FP32 PPL",
             f"{title}: WikiText-2, the tokens llama-perplexity scores")
    for i, (x, y, r) in enumerate(zip(xs, ly, rows)):
        bwla = r["name"].startswith("bwla")
        pl.plcol0(9 if bwla else 1)  # blue: bwla, red: llama.cpp
        pl.plpoin([x], [y], 17 if bwla else 5)
        if lab[i] != y:
            pl.pljoin(x, y, x + 0.05, lab[i])
        label = r["name"].replace("bwla ", "").replace(" (imatrix)", "")
        pl.plptex(x + 0.06, lab[i], 1.0, 0.0, 0.0, f"{label}: {10 ** y:.2f}x, {x:.2f} bits")
    pl.plend()


if __name__ == "__main__":
    main()
