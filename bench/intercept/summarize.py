#!/usr/bin/env python3
"""Medians of bench/intercept/run.sh's runs.tsv as markdown tables.

Usage: python3 bench/intercept/summarize.py OUT/runs.tsv > OUT/tables.md

A run counts when it had no errors, nothing unfinished and (open loop) reached 99% of its rate;
the others are listed and left out of the medians. Each cell is the median over the repetitions.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict

ARM_ORDER = ("direct", "dnat", "listener", "intercept", "tproxy", "l7-listener", "l7-intercept", "l7-tproxy")
WORKLOADS = {"keepalive": "HTTP/1.1 keep-alive", "close": "a new connection per request (Connection: close)"}


def clean(row: dict[str, str]) -> str | None:
    """What was wrong with a run, or None."""
    if row["errors"] == "failed":
        return "bench load failed"
    if int(row["errors"]) or int(row["unfinished"]):
        return f"{row['errors']} errors, {row['unfinished']} unfinished"
    if row["rate"] != "max" and int(row["achieved"]) < 0.99 * float(row["rate"]):
        return f"rate not achieved ({row['achieved']} req/s)"
    return None


def us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 10_000 else f"{value:.0f} us"


def main(path: str) -> None:
    with open(path) as f:
        header = f.readline().lstrip("# ").strip()
        rows = list(csv.DictReader(f, delimiter="\t"))
    runs: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    bad = []
    for row in rows:
        problem = clean(row)
        if problem:
            bad.append((row, problem))
        else:
            runs[(row["workload"], row["rate"], row["arm"])].append(row)

    def med(workload: str, rate: str, arm: str, key: str) -> float | None:
        values = [float(r[key]) for r in runs.get((workload, rate, arm), []) if r[key] != ""]
        return statistics.median(values) if values else None

    arms = [a for a in ARM_ORDER if any(k[2] == a for k in runs)]
    loads = [float(r["load1"]) for r in rows]
    print(f"Runs: {header}. Load average (1 min) during the runs: median {statistics.median(loads):.1f}, "
          f"min {min(loads):.1f}, max {max(loads):.1f}.\n")
    for workload, title in WORKLOADS.items():
        rates = list(dict.fromkeys(r["rate"] for r in rows if r["workload"] == workload))
        fixed = [r for r in rates if r != "max"]
        if not rates:
            continue
        print(f"### {title}\n")
        print("Latency p50 / p99 / p99.9 at fixed rates, and the closed-loop maximum (req/s, p50):\n")
        print("| arm | " + " | ".join(f"{r} req/s" for r in fixed) + (" | max req/s | p50 at max |" if "max" in rates else " |"))
        print("|---|" + "---:|" * (len(fixed) + (2 if "max" in rates else 0)))
        for arm in arms:
            cells = []
            for rate in fixed:
                p = [med(workload, rate, arm, k) for k in ("p50_us", "p99_us", "p999_us")]
                cells.append(" / ".join(us(v) for v in p) if None not in p else "n/a")
            if "max" in rates:
                top, p50 = med(workload, "max", arm, "achieved"), med(workload, "max", arm, "p50_us")
                cells += [f"{top:.0f}" if top else "n/a", us(p50) if p50 else "n/a"]
            print(f"| {arm} | " + " | ".join(cells) + " |")
        print()
        print("p50 added over direct (the kernel-only dnat arm too), and the proxy's CPU per request "
              "(utime + stime of the forwarder process over the run):\n")
        print("| arm | " + " | ".join(f"+p50 at {r}" for r in fixed) + " | " + " | ".join(f"CPU/req at {r}" for r in rates) + " |")
        print("|---|" + "---:|" * (len(fixed) + len(rates)))
        for arm in arms:
            cells = []
            for rate in fixed:
                a, d = med(workload, rate, arm, "p50_us"), med(workload, rate, "direct", "p50_us")
                cells.append(f"{a - d:+.0f} us" if a is not None and d is not None else "n/a")
            for rate in rates:
                cpu = med(workload, rate, arm, "proxy_cpu_us_per_req")
                cells.append(f"{cpu:.1f} us" if cpu is not None else "")
            print(f"| {arm} | " + " | ".join(cells) + " |")
        print()
    if bad:
        print("Runs left out of the medians:\n")
        for row, problem in bad:
            print(f"- rep {row['rep']}, {row['workload']} {row['rate']}, {row['arm']}: {problem}")
    else:
        print("Every run measured cleanly (no errors, nothing unfinished, every fixed rate reached).")


if __name__ == "__main__":
    main(sys.argv[1])
