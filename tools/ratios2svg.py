#!/usr/bin/env python3
"""ratios2svg - chart make bench-peers' ratios (libfutures / peer) as an SVG.

    ratios2svg.py PEERS.csv OUT.svg

One group of bars per figure, one bar per peer, on a log scale centred on
1: a bar to the left of the line (ratio < 1) means libfutures is better
(every figure is lower-is-better), to the right that the peer is.
"""
import csv
import math
import sys
from xml.sax.saxutils import escape

COLOURS = {"glib": "#4e79a7", "libuv": "#f28e2b", "tbb": "#59a14f"}
LABEL_W, PLOT_W, BAR_H, GAP, TOP = 190, 520, 12, 10, 50
LOG_SPAN = 3.0  # 10^-3 .. 10^3


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    rows = [r for r in csv.DictReader(open(argv[0]))
            if r["peer"] != "libfutures"]
    figures = []
    for r in rows:
        key = "%s (%s)" % (r["figure"], r["unit"])
        if key not in figures:
            figures.append(key)
    peers = [p for p in COLOURS if any(r["peer"] == p for r in rows)]
    group_h = len(peers) * BAR_H + GAP
    height = TOP + len(figures) * group_h + 50
    width = LABEL_W + PLOT_W + 40
    x = lambda ratio: LABEL_W + PLOT_W / 2 + \
        max(-LOG_SPAN, min(LOG_SPAN, math.log10(ratio))) / LOG_SPAN * PLOT_W / 2
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="18" font-size="14" font-weight="bold">'
           'libfutures / peer (log scale; left of 1 = libfutures better)</text>']
    for i, p in enumerate(peers):
        out.append('<rect x="%d" y="28" width="10" height="10" fill="%s"/>'
                   '<text x="%d" y="37">%s</text>'
                   % (LABEL_W + i * 90, COLOURS[p], LABEL_W + 14 + i * 90, p))
    for gi, fig in enumerate(figures):
        y0 = TOP + gi * group_h
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (LABEL_W - 8, y0 + group_h / 2, escape(fig)))
        for pi, p in enumerate(peers):
            r = next((r for r in rows if "%s (%s)" % (r["figure"], r["unit"])
                      == fig and r["peer"] == p), None)
            if not r or r["ratio_libfutures_over_peer"] in ("", "n/a"):
                continue
            ratio = float(r["ratio_libfutures_over_peer"])
            x0, x1 = sorted((x(1.0), x(ratio)))
            y = y0 + pi * BAR_H
            out.append('<rect class="bar" x="%.1f" y="%d" width="%.1f" '
                       'height="%d" fill="%s"><title>%s %s: %.3g</title></rect>'
                       % (x0, y, max(x1 - x0, 1), BAR_H - 2, COLOURS[p],
                          escape(fig), p, ratio))
            out.append('<text x="%.1f" y="%d" font-size="9">%.3g</text>'
                       % (x1 + 3 if ratio >= 1 else max(x0 - 28, LABEL_W + 2),
                          y + 9, ratio))
    axis_y = TOP + len(figures) * group_h
    for k in range(-3, 4):
        xx = x(10 ** k)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>'
                   % (xx, TOP - 4, xx, axis_y, "#000" if k == 0 else "#ddd"))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>'
                   % (xx, axis_y + 14, 10 ** k))
    out.append("</svg>")
    open(argv[1], "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
