#!/usr/bin/env python3
"""Plots an example's metrics (the JSON lines its --metrics FILE wrote) with gnuplot, as PNG and SVG.

usage: plot_metrics.py METRICS.jsonl OUT_PREFIX TITLE X_KEY LEFT_KEY[,LEFT_KEY...] [RIGHT_KEY[,...]]

The left keys share the left axis (rates, rewards), the right keys the right one (a loss). Writes
OUT_PREFIX.png and OUT_PREFIX.svg and prints their paths. Exits non-zero with a one-line reason
when the file has no rows or lacks a key, or when gnuplot fails.
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__.strip().splitlines()[2])
    metrics, prefix, title, x_key = sys.argv[1:5]
    left = sys.argv[5].split(",")
    right = sys.argv[6].split(",") if len(sys.argv) == 7 else []
    rows = []
    with open(metrics) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot_metrics: {metrics}:{number}: not JSON ({e})")
    if not rows:
        sys.exit(f"plot_metrics: {metrics} holds no rows")
    keys = [x_key] + left + right
    for key in keys:
        if key not in rows[0]:
            sys.exit(f"plot_metrics: {metrics} has no '{key}' (it has {', '.join(rows[0])})")

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.tsv")
        with open(data, "w") as f:
            for row in rows:
                f.write("\t".join(str(row.get(k, "NaN")) for k in keys) + "\n")
        label = lambda k: k.replace("_", " ")  # noqa: E731 (gnuplot would subscript after '_')
        plots = [f"'{data}' using 1:{2 + i} with linespoints lw 2 pt 7 ps 0.6 title '{label(k)}'"
                 for i, k in enumerate(left)]
        plots += [f"'{data}' using 1:{2 + len(left) + i} axes x1y2 with lines lw 2 dt 2 title '{label(k)}'"
                  for i, k in enumerate(right)]
        common = [
            f"set title '{title}'",
            f"set xlabel '{label(x_key)}'",
            f"set ylabel '{', '.join(label(k) for k in left)}'",
            "set key outside bottom center horizontal",
            "set grid",
        ]
        if right:
            common += [f"set y2label '{', '.join(label(k) for k in right)}'", "set y2tics", "set ytics nomirror"]
        for terminal, ext in (("pngcairo size 900,540 font ',11'", "png"), ("svg size 900,540 dynamic", "svg")):
            script = [f"set terminal {terminal}", f"set output '{prefix}.{ext}'"] + common
            script.append("plot " + ", ".join(plots))
            run = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, capture_output=True)
            if run.returncode != 0:
                sys.exit(f"plot_metrics: gnuplot failed: {run.stderr.strip()}")
            print(f"{prefix}.{ext}")


if __name__ == "__main__":
    main()
