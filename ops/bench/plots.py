#!/usr/bin/env python3
"""Draws the figures of ops/bench/scaling.py --json FILE as PNGs for docs/PERFORMANCE.md.

  python3 ops/bench/plots.py FILE [--out docs]

Writes scaling-processes.png (no-op jobs/s against worker processes, with Redis CPU per job)
and scaling-latency.png (enqueue -> claim p50/p90/p99 against the enqueue rate). Needs
matplotlib (pip install matplotlib).
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def processes_plot(figures, path):
    rows = figures["processes"]
    counts = [row["processes"] for row in rows]
    figure, left = plt.subplots(figsize=(6.4, 4))
    left.plot(counts, [row["jobs_per_s"] for row in rows], marker="o", color="tab:blue", label="jobs/s")
    left.set_xlabel("worker processes (one model, concurrency limit 1,000)")
    left.set_ylabel("no-op jobs/s", color="tab:blue")
    left.set_xscale("log", base=2)
    left.set_xticks(counts, [str(count) for count in counts])
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(counts, [row["redis_us_per_job"] for row in rows], marker="s", linestyle="--", color="tab:red",
               label="Redis CPU µs/job")
    right.set_ylabel("Redis CPU µs per job", color="tab:red")
    right.set_ylim(bottom=0)
    left.set_title(f"ImageQueue on one Redis, {figures['cores']} cores ({figures['date']})", fontsize=10)
    left.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency_plot(figures, path):
    rows = figures["latency"]
    rates = [row["achieved"] for row in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4))
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99")):
        axes.plot(rates, [row[key] for row in rows], marker="o", label=label)
    axes.set_xlabel("enqueues per second (one job per call)")
    axes.set_ylabel("enqueue → claim, ms")
    axes.set_xscale("log")
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.grid(alpha=0.3)
    axes.set_title(f"Latency under load, {figures['cores']} cores ({figures.get('latency_date', figures['date'])})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures")
    parser.add_argument("--out", default="docs")
    arguments = parser.parse_args()
    with open(arguments.figures) as handle:
        figures = json.load(handle)
    os.makedirs(arguments.out, exist_ok=True)
    if figures.get("processes"):
        processes_plot(figures, os.path.join(arguments.out, "scaling-processes.png"))
    if figures.get("latency"):
        latency_plot(figures, os.path.join(arguments.out, "scaling-latency.png"))


if __name__ == "__main__":
    main()
