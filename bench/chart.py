#!/usr/bin/env python3
"""Draw the throughput chart of docs/benchmarks.md from `bench/run.py --json` results.

    python bench/chart.py RESULTS.json docs/images/benchmarks.png

Needs matplotlib (not a dependency of the project: `pip install matplotlib`).
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOOLS = [
    ("cp + sync", "#7f7f7f"),
    ("rclone copy + sync", "#bcbd22"),
    ("rclone copy", "#bcbd22"),
    ("bpsync sync, whole run", "#1f77b4"),
    ("bpsync sync, marginal (whole − fixed cost)", "#17becf"),
    ("bpsync copy_files step alone", "#2ca02c"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    rows = [row for row in data["rows"] if row["group"] == "1 throughput" and row["unit"] == "MiB/s"]
    cases = list(dict.fromkeys(row["case"] for row in rows))
    figure, axes = plt.subplots(figsize=(10, 1.0 + 0.9 * len(cases)))
    height = 0.8 / 4
    labels_done = set()
    for index, case in enumerate(cases):
        bars = [row for row in rows if row["case"] == case]
        bars.sort(key=lambda row: [name for name, _ in TOOLS].index(row["what"]))
        for position, row in enumerate(bars):
            color = dict(TOOLS)[row["what"]]
            label = "rclone copy (+ sync on POSIX)" if row["what"].startswith("rclone") else row["what"]
            y = index + (position - (len(bars) - 1) / 2) * height
            value = row["value"] if row["value"] == row["value"] else 0
            axes.barh(y, value, height=height * 0.9, color=color, label=None if label in labels_done else label)
            labels_done.add(label)
            text = f"{value:,.0f}" if value >= 10 else f"{value:.1f}"
            ratio = row["ratio"]
            if ratio is not None and ratio == ratio and row["baseline"] not in (None, "itself"):
                text += f"  ({row['ratio']:.2f}×)"
            axes.text(value, y, " " + text, va="center", fontsize=7)
    axes.set_yticks(range(len(cases)), cases)
    axes.invert_yaxis()
    axes.set_xlabel("MiB/s (median); in brackets: ratio to cp + sync (POSIX→POSIX) or rclone copy (S3)")
    runs = f"{data.get('repeat')} runs POSIX, {data.get('s3_repeat')} runs S3"
    axes.set_title(f"bpsync sync vs cp and rclone, copy throughput ({runs}; S3 servers on localhost)", fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    axes.margins(x=0.2)
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
