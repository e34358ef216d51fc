#!/usr/bin/python3
"""PPL (relative to each tool's own FP32) against decoder bits per weight, from
bench/quality_llamacpp.py's JSON: plot_pareto.py DATA.json OUT.png TITLE.
Uses PLplot (Debian python3-plplot) with its pngqt device, run offscreen."""
import json, statistics, sys

import plplot as pl


def main():
    data, png, title = sys.argv[1:4]
    rows = json.load(open(data))["rows"]
    xs = [r["dec_bits"] for r in rows]
    ys = [statistics.mean(r["ppl"]) / r["ppl_base"] for r in rows]
    pl.plsdev("pngqt")
    pl.plsfnam(png)
    pl.plspage(0, 0, 1100, 700, 0, 0)
    pl.plscolbg(255, 255, 255)
    pl.plinit()
    pl.plcol0(15)  # black on the white background
    pl.plschr(0, 0.8)
    pl.plenv(0.9, max(xs) * 1.1, 0.9, max(ys) * 1.1, 0, 0)
    pl.pllab("bits per decoder weight (every side tensor counted)", "PPL / the tool's own FP32 PPL",
             f"{title}: WikiText-2, llama-perplexity's scored tokens")
    for x, y, r in zip(xs, ys, rows):
        bwla = r["name"].startswith("bwla")
        pl.plcol0(9 if bwla else 1)  # blue: bwla, red: llama.cpp
        pl.plpoin([x], [y], 17 if bwla else 5)
        pl.plcol0(15)
        pl.plptex(x + 0.03, y, 1.0, 0.0, 0.0, r["name"].replace("bwla ", "").replace(" (imatrix)", ""))
    pl.plend()


if __name__ == "__main__":
    main()
