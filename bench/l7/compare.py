#!/usr/bin/env python3
"""HTTP/1.1 proxying, side by side, measured the way issue 4 states its speed goal.

``wrk -t1 -cC --latency`` for a short body (nginx, one worker, ``return 200``), through:

* ``direct``: the client straight to the backend (the ceiling);
* ``forwarder``: this project's http listener (``tcp.ioThreads: 1``);
* ``haproxy``: HAProxy ``mode http``, ``http-reuse always``, ``nbthread 1``;
* ``nginx``: nginx ``proxy_pass`` with upstream ``keepalive``, one worker.

``--threads default`` runs every proxy on its shipped defaults instead (no ``tcp`` section for the
forwarder, HAProxy's default ``nbthread``, nginx ``worker_processes auto`` as its packages ship it):
the busy-node case, where wrk and the backend share the cores with the proxies.
``--variant NAME=THREADS`` adds forwarder arms with ``tcp.ioThreads: THREADS``, measured in the
same interleaved run, to decide a default. ``--shield NICE`` gives every process of the benchmark
(wrk too) a session of its own at that autogroup nice: on a machine shared with other work they then
compete mostly among themselves, with equal weights, as on a node running only them.

Every repetition runs every arm at every connection count: direct first, then the three proxies
in an order rotated each time, so drift on the machine hits all of them alike and the forwarder
always runs next to its peers. Figures are medians over the repetitions;
the forwarder is compared with the better peer both by medians and rep by rep (its req/s and p99
over those of the peer that was faster in the same repetition). Proxy CPU is the process tree's utime + stime over the run.

Writes OUT/results.json (every sample) and OUT/report.md. Python 3.11 standard library only;
needs wrk, haproxy and nginx. Usage: python3 bench/l7/compare.py --help
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FORWARDER = REPO_ROOT / "forwarder" / "bin" / "Release" / "net10.0" / "forwarder"
PEERS = ("haproxy", "nginx")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="32,256", help="comma-separated wrk -c values (default 32,256)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of unmeasured load per arm and count first, enough for .NET to finish tiering its code (default 10)")
    parser.add_argument("--forwarder", type=Path, default=DEFAULT_FORWARDER, help="forwarder binary (default: the Release build, built if missing)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "perf-reports" / "l7-http1-wrk", help="report directory")
    parser.add_argument("--threads", default="1", help="threads of every proxy: a number, or 'default' for each one's shipped default (default 1)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=THREADS",
                        help="an extra forwarder arm with tcp.ioThreads THREADS (repeatable)")
    parser.add_argument("--shield", type=int, default=None, metavar="NICE",
                        help="autogroup nice (-20..19, below 0 needs root) for every process of the benchmark (default: none)")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    if args.threads != "default" and not (args.threads.isdigit() and int(args.threads) >= 1):
        parser.error("--threads takes a positive number or 'default'")
    try:
        args.variants = {name: int(threads) for name, threads in (v.split("=", 1) for v in args.variant)}
    except ValueError:
        parser.error("--variant takes NAME=THREADS, e.g. forwarder-1t=1")
    if any(name in ("direct", "forwarder", *PEERS) or threads < 1 for name, threads in args.variants.items()):
        parser.error("--variant names must be new arms and THREADS positive")
    args.arms = ("direct", "forwarder", *args.variants, *PEERS)
    if args.shield is not None and not -20 <= args.shield <= 19:
        parser.error("--shield takes a nice value from -20 to 19")
    if args.reps < 1 or args.duration < 1 or any(c < 1 for c in args.connections):
        parser.error("--reps, --duration and --connections must be positive")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not listen on {port} within {deadline_s:.0f}s")


def shield(pid: int, nice: int | None) -> None:
    """Set the autogroup nice of ``pid``'s session (a session of its own): the whole session is one scheduling entity."""
    if nice is not None:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def nginx_conf(directory: Path, body: str, workers: str = "1") -> str:
    temps = "\n".join(f"    {kind}_temp_path {directory}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"worker_processes {workers};\ndaemon off;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log warn;\n"
            f"worker_rlimit_nofile 16384;\nevents {{ worker_connections 8000; }}\n"
            f"http {{\n    access_log off;\n    keepalive_requests 1000000;\n{temps}\n{body}\n}}\n")


class Lab:
    """The backend and the three proxies, each in its own process, for the whole run."""

    def __init__(self, work: Path, forwarder: Path, threads: str, variants: dict[str, int], nice: int | None):
        self.work = work
        self.nice = nice
        self.processes: dict[str, subprocess.Popen] = {}
        self.arms = ("direct", "forwarder", *variants, *PEERS)
        self.ports = {arm: free_port() for arm in self.arms}
        backend = self.ports["direct"]
        defaults = threads == "default"
        self._nginx("backend", f"    server {{ listen 127.0.0.1:{backend}; location / {{ return 200 \"hello world\\n\"; }} }}")
        self._nginx("nginx", f"    upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; }}\n"
                             f"    server {{ listen 127.0.0.1:{self.ports['nginx']}; location / {{ proxy_pass http://backend; "
                             "proxy_http_version 1.1; proxy_set_header Connection \"\"; } }",
                    workers="auto" if defaults else threads)
        haproxy = work / "haproxy.cfg"
        nbthread = "" if defaults else f"    nbthread {threads}\n"
        haproxy.write_text(f"global\n{nbthread}    maxconn 8000\n\ndefaults\n    mode http\n    timeout connect 5s\n"
                           f"    timeout client 60s\n    timeout server 60s\n    option http-keep-alive\n    http-reuse always\n\n"
                           f"frontend bench\n    bind 127.0.0.1:{self.ports['haproxy']}\n    default_backend backend\n\n"
                           f"backend backend\n    server backend1 127.0.0.1:{backend}\n")
        self._start("haproxy", ["haproxy", "-f", str(haproxy)])
        for arm, io_threads in {"forwarder": None if defaults else int(threads), **variants}.items():
            self._forwarder(arm, forwarder, backend, io_threads)
        for arm in self.arms:
            wait_for_port(self.ports[arm], self.processes["backend" if arm == "direct" else arm], arm)

    def _forwarder(self, arm: str, forwarder: Path, backend: int, io_threads: int | None) -> None:
        config = self.work / f"{arm}.yaml"
        tcp = "" if io_threads is None else f"tcp:\n  ioThreads: {io_threads}\n"
        config.write_text(f"{tcp}admin:\n  listen: 127.0.0.1:{free_port()}\nlisteners:\n  - name: bench\n"
                          f"    listen: 127.0.0.1:{self.ports[arm]}\n    protocol: http\n    routes:\n      - service: backend\n"
                          f"services:\n  backend:\n    endpoints:\n      - address: 127.0.0.1:{backend}\n")
        self._start(arm, [str(forwarder), "--config", str(config)])

    def _nginx(self, name: str, body: str, workers: str = "1") -> None:
        directory = self.work / name
        directory.mkdir()
        (directory / "nginx.conf").write_text(nginx_conf(directory, body, workers))
        self._start(name, ["nginx", "-c", str(directory / "nginx.conf"), "-p", str(directory)])

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.work / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        shield(self.processes[name].pid, self.nice)

    def pids(self, arm: str) -> list[int]:
        root = self.processes[arm].pid
        children = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
        return [root, *(int(pid) for pid in children)]

    def cpu_seconds(self, arm: str) -> float:
        total = 0
        for pid in self.pids(arm):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mib(self, arm: str) -> float:
        total = 0
        for pid in self.pids(arm):
            try:
                total += next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return total / 1024

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def microseconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1, "ms": 1_000, "s": 1_000_000}[unit]


def run_wrk(port: int, connections: int, seconds: int, nice: int | None) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"]
    # A session of its own, so that --shield can prioritize it without touching the caller's.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True) as wrk:
        try:
            shield(wrk.pid, nice)
            output, stderr = wrk.communicate(timeout=seconds + 60)
        except BaseException:
            wrk.kill()
            raise
    if wrk.returncode != 0:
        raise SystemExit(f"wrk exited with code {wrk.returncode}:\n{stderr or output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise SystemExit(f"wrk printed no rate:\n{output}")
    latency = {p: microseconds(*re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", output).groups()) for p in ("50", "90", "99")}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0
    return {"rps": float(rate.group(1)), "p50_us": latency["50"], "p90_us": latency["90"], "p99_us": latency["99"], "errors": errors}


def measure(lab: Lab, arm: str, connections: int, seconds: int) -> dict:
    proxied = arm != "direct"
    before = lab.cpu_seconds(arm) if proxied else 0.0
    sample = {"load_average": load_average(), **run_wrk(lab.ports[arm], connections, seconds, lab.nice)}
    if proxied:
        requests = sample["rps"] * seconds
        sample["cpu_us_per_req"] = (lab.cpu_seconds(arm) - before) / requests * 1e6 if requests else None
        sample["rss_mib"] = lab.rss_mib(arm)
    return sample


def summarize(samples: list[dict], connections: list[int], reps: int, arms: tuple[str, ...]) -> dict:
    summary = {}
    forwarders = [arm for arm in arms if arm != "direct" and arm not in PEERS]
    for c in connections:
        rows = {}
        for arm in arms:
            mine = [s for s in samples if s["connections"] == c and s["arm"] == arm]
            rows[arm] = {key: statistics.median(s[key] for s in mine) for key in ("rps", "p50_us", "p99_us")}
            rows[arm]["rps_min"] = min(s["rps"] for s in mine)
            rows[arm]["rps_max"] = max(s["rps"] for s in mine)
            rows[arm]["errors"] = sum(s["errors"] for s in mine)
            if arm != "direct":
                rows[arm]["cpu_us_per_req"] = statistics.median(s["cpu_us_per_req"] for s in mine)
                rows[arm]["rss_mib"] = max(s["rss_mib"] for s in mine)
        best = max(PEERS, key=lambda peer: rows[peer]["rps"])
        summary[str(c)] = {"arms": rows, "best_peer": best, "forwarders": {}}
        for forwarder in forwarders:
            per_rep = []
            per_rep_p99 = []
            for rep in range(reps):
                at = {s["arm"]: s for s in samples if s["connections"] == c and s["rep"] == rep}
                faster = max(PEERS, key=lambda peer: at[peer]["rps"])
                per_rep.append(at[forwarder]["rps"] / at[faster]["rps"])
                per_rep_p99.append(at[forwarder]["p99_us"] / at[faster]["p99_us"])
            summary[str(c)]["forwarders"][forwarder] = {
                "rps_vs_best_peer": rows[forwarder]["rps"] / rows[best]["rps"],
                "p99_vs_best_peer": rows[forwarder]["p99_us"] / rows[best]["p99_us"],
                "per_rep_rps_vs_better_peer": per_rep,
                "per_rep_median": statistics.median(per_rep),
                "per_rep_p99_vs_better_peer": per_rep_p99,
                "per_rep_p99_median": statistics.median(per_rep_p99),
            }
    return summary


def latency(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def render(results: dict) -> str:
    m = results["machine"]
    loads = [s["load_average"] for s in results["samples"]]
    lines = [
        f"# {results['name']}",
        "",
        f"`bench/l7/compare.py`, {results['started']}, on {m['cpus']} cores ({m['cpu']}); {m['os']}.",
        f"`wrk -t1 -cC -d{results['duration']}s --latency` to an nginx backend (one worker, `return 200`, 12-byte body), "
        f"{results['reps']} repetitions, every arm at every connection count in each (direct first, the proxies in rotated order); "
        f"medians over the repetitions with [min–max]. {threads_sentence(results)}",
        *([f"Shielded: every process of the benchmark (wrk, backend, proxies) in a session of its own with autogroup nice "
           f"{results['shield']}, so other work on the machine took little of its cores while they competed among "
           "themselves with equal weights."] if results.get("shield") is not None else []),
        f"1-minute load average as the runs started: median {statistics.median(loads):.1f} [{min(loads):.1f}–{max(loads):.1f}] "
        "(the benchmark itself accounts for about 3).",
        "",
        *[f"- {tool}: {version}" for tool, version in results["versions"].items()],
        "",
    ]
    for c, summary in results["summary"].items():
        lines += [f"## wrk -t1 -c{c}", "", "| arm | req/s | vs direct | p50 | p99 | errors | proxy CPU µs/req | proxy RSS |", "|---|---|---|---|---|---|---|---|"]
        direct = summary["arms"]["direct"]["rps"]
        for arm in results["arms"]:
            row = summary["arms"][arm]
            cpu = f"{row['cpu_us_per_req']:.1f}" if "cpu_us_per_req" in row else ""
            rss = f"{row['rss_mib']:.0f} MiB" if "rss_mib" in row else ""
            ratio = "" if arm == "direct" else f"{row['rps'] / direct:.2f}x"
            lines.append(f"| {arm} | {row['rps']:,.0f} [{row['rps_min']:,.0f}–{row['rps_max']:,.0f}] | {ratio} | {latency(row['p50_us'])} | {latency(row['p99_us'])} | {row['errors']} | {cpu} | {rss} |")
        failing = [arm for arm in results["arms"] if summary["arms"][arm]["errors"]]
        if failing:
            lines += ["", f"**Not a fair comparison: {', '.join(failing)} failed requests** (the errors column); their req/s and latencies include failed requests."]
        lines.append("")
        for forwarder, ratios in summary["forwarders"].items():
            per_rep = ", ".join(f"{r:.2f}" for r in ratios["per_rep_rps_vs_better_peer"])
            per_rep_p99 = ", ".join(f"{r:.2f}" for r in ratios["per_rep_p99_vs_better_peer"])
            name = "Forwarder" if forwarder == "forwarder" else f"`{forwarder}`"
            lines += [f"{name} against the better peer ({summary['best_peer']}, by median): **{ratios['rps_vs_best_peer']:.2f}x** the req/s, "
                      f"**{ratios['p99_vs_best_peer']:.2f}x** the p99 (below 1 is better). Rep by rep, against whichever peer was faster in that "
                      f"repetition: median **{ratios['per_rep_median']:.2f}x** ({per_rep}) the req/s, "
                      f"**{ratios['per_rep_p99_median']:.2f}x** ({per_rep_p99}) the p99.", ""]
    return "\n".join(lines)


def threads_sentence(results: dict) -> str:
    variants = "".join(f"; `{name}`: the forwarder with `tcp.ioThreads: {threads}`" for name, threads in results["variants"].items())
    if results["threads"] == "default":
        return ("Every proxy on its shipped defaults, sharing the cores with wrk and the backend: HAProxy without `nbthread` "
                "(one thread per core), nginx `worker_processes auto` (as Debian ships it), the forwarder without a `tcp` section "
                f"(`mode http`, `http-reuse always`; upstream `keepalive 256`){variants}.")
    n = results["threads"]
    return (f"Every proxy on {n} thread(s): HAProxy `nbthread {n}` (`mode http`, `http-reuse always`), nginx {n} worker(s) "
            f"(upstream `keepalive 256`), the forwarder `tcp.ioThreads: {n}`{variants}.")


def version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def main() -> int:
    args = parse_args()
    for tool in ("wrk", "haproxy", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (on Debian: apt-get install wrk haproxy nginx)")
    if not args.forwarder.exists():
        subprocess.run(["dotnet", "build", str(REPO_ROOT / "forwarder"), "-c", "Release"], check=True)
    started = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="l7-compare-") as work:
        lab = Lab(Path(work), args.forwarder, args.threads, args.variants, args.shield)
        try:
            for c in args.connections:
                for arm in args.arms:
                    run_wrk(lab.ports[arm], c, args.warmup, args.shield)
            samples = []
            for rep in range(args.reps):
                # Direct (the ceiling) first, then the three proxies in rotated order, so the forwarder
                # always runs next to the peers it is compared with: this machine's speed drifts.
                proxies = [arm for arm in args.arms if arm != "direct"]
                order = ["direct"] + proxies[rep % len(proxies):] + proxies[:rep % len(proxies)]
                for c in args.connections:
                    for arm in order:
                        sample = {"rep": rep, "connections": c, "arm": arm, **measure(lab, arm, c, args.duration)}
                        samples.append(sample)
                        errors = f"  ERRORS {sample['errors']}" if sample["errors"] else ""
                        print(f"rep {rep} c{c} {arm:9} {sample['rps']:9,.0f} req/s  p99 {latency(sample['p99_us'])}{errors}", flush=True)
        finally:
            lab.close()
    results = {
        "name": args.out.name,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "reps": args.reps,
        "duration": args.duration,
        "warmup": args.warmup,
        "threads": args.threads,
        "variants": args.variants,
        "shield": args.shield,
        "arms": list(args.arms),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "os": platform.platform()},
        "versions": {"haproxy": version(["haproxy", "-v"]), "nginx": version(["nginx", "-v"]), "wrk": version(["wrk", "-v"]),
                     "forwarder": subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()},
        "samples": samples,
        "summary": summarize(samples, args.connections, args.reps, args.arms),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "report.md").write_text(render(results))
    print(render(results))
    # Req/s and latency of an arm that failed requests are not a working proxy's: no pass on them.
    return 1 if any(s["errors"] for s in samples) else 0


if __name__ == "__main__":
    raise SystemExit(main())
