#!/usr/bin/env python3
"""trace2svg - draw a libfutures trace (Chrome trace-event JSON) as an SVG.

One lane per thread, one bar per task or span, a time axis in seconds.

    trace2svg.py TRACE.json OUT.svg [--title TEXT] [--scale F]

--scale F says the run was made with every delay multiplied by F (the
samples' --scale): times are divided by F, so the axis reads in seconds of
the unscaled run, and the title says so. Without it the axis shows the
measured time.
"""
import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

LANE_HEIGHT = 28
BAR_HEIGHT = 20
LABEL_WIDTH = 170
PLOT_WIDTH = 640
TOP = 46
BOTTOM = 40
COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def load(path):
    with open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    bars = [e for e in events if e.get("ph") == "X"]
    names = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            names.setdefault(("pool", e["pid"]), e["args"]["name"])
    return bars, names


def lane_label(pid, tid, names):
    pool = names.get(("pool", pid), "pool %d" % pid)
    if pid == 0:
        return "thread %d (no pool)" % tid
    return "%s, thread %d" % (pool, tid)


def nice_step(span):
    """A round tick step giving 4 to 10 ticks over span."""
    if span <= 0:
        return 1.0
    raw = span / 6.0
    base = 10 ** math.floor(math.log10(raw))
    for k in (1, 2, 2.5, 5, 10):
        if base * k >= raw:
            return base * k
    return base * 10


def colour_for(name, palette):
    if name not in palette:
        palette[name] = COLOURS[len(palette) % len(COLOURS)]
    return palette[name]


def draw(bars, names, title, scale):
    lanes = sorted({(e["pid"], e["tid"]) for e in bars})
    row = {lane: i for i, lane in enumerate(lanes)}
    start = min((e["ts"] for e in bars), default=0.0)
    end = max((e["ts"] + e["dur"] for e in bars), default=1.0)
    seconds = lambda us: (us - start) / 1e6 / scale
    span = max(seconds(end), 1e-9)
    step = nice_step(span)
    axis_end = math.ceil(span / step - 1e-9) * step
    x = lambda s: LABEL_WIDTH + s / axis_end * PLOT_WIDTH
    height = TOP + len(lanes) * LANE_HEIGHT + BOTTOM
    width = LABEL_WIDTH + PLOT_WIDTH + 30

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
           % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="14" font-weight="bold">%s</text>'
           % escape(title)]
    for lane, i in row.items():
        y = TOP + i * LANE_HEIGHT
        fill = "#f4f4f4" if i % 2 == 0 else "#ffffff"
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>'
                   % (LABEL_WIDTH, y, PLOT_WIDTH, LANE_HEIGHT, fill))
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (LABEL_WIDTH - 8, y + LANE_HEIGHT / 2 + 4,
                      escape(lane_label(lane[0], lane[1], names))))
    # Colours follow the names in sorted order, so "job 2" has the same
    # colour in every picture of a series.
    palette = {}
    for name in sorted({e["name"] for e in bars}):
        colour_for(name, palette)
    for e in sorted(bars, key=lambda e: e["ts"]):
        y = TOP + row[(e["pid"], e["tid"])] * LANE_HEIGHT
        x0, x1 = x(seconds(e["ts"])), x(seconds(e["ts"] + e["dur"]))
        w = max(x1 - x0, 1.0)
        failed = e.get("args", {}).get("error", 0)
        out.append('<rect class="bar" x="%.1f" y="%.1f" width="%.1f" '
                   'height="%d" rx="3" fill="%s"%s><title>%s: %.3f s to '
                   '%.3f s%s</title></rect>'
                   % (x0, y + (LANE_HEIGHT - BAR_HEIGHT) / 2, w, BAR_HEIGHT,
                      colour_for(e["name"], palette),
                      ' stroke="#c00" stroke-width="2"' if failed else "",
                      escape(e["name"]), seconds(e["ts"]),
                      seconds(e["ts"] + e["dur"]),
                      " (error %d)" % failed if failed else ""))
        if w > 7 * len(e["name"]):
            out.append('<text x="%.1f" y="%.1f" fill="white">%s</text>'
                       % (x0 + 4, y + LANE_HEIGHT / 2 + 4, escape(e["name"])))
    axis_y = TOP + len(lanes) * LANE_HEIGHT
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
               % (LABEL_WIDTH, axis_y, LABEL_WIDTH + PLOT_WIDTH, axis_y))
    ticks = int(round(axis_end / step))
    for k in range(ticks + 1):
        s = k * step
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>'
                   % (x(s), axis_y, x(s), axis_y + 5))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>'
                   % (x(s), axis_y + 18, round(s, 6)))
    unit = "seconds" if scale == 1 else \
        "seconds of the unscaled run (measured at scale %g)" % scale
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>'
               % (LABEL_WIDTH + PLOT_WIDTH / 2, axis_y + 34, unit))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("svg")
    ap.add_argument("--title", default="libfutures trace")
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")
    bars, names = load(args.trace)
    with open(args.svg, "w") as f:
        f.write(draw(bars, names, args.title, args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
