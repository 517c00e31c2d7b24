#!/usr/bin/env python3
"""Compare the forwarder with HAProxy (``mode tcp``) and a direct connection, on loopback.

One invocation measures, interleaved rep by rep so that drift on the machine hits every arm alike:

* HTTP requests carried over L4: ``wrk -t1 -cC -dDs --latency`` against an nginx backend that
  returns a short body (requests/s, latency percentiles, errors);
* bulk throughput: ``iperf3 -P1`` and ``iperf3 -P4`` (Gbit/s received);
* for every proxied run, the proxy's CPU time (utime + stime) and its RSS;

through three arms: ``direct`` (client straight to the backend: the ceiling), ``haproxy``
(HAProxy ``mode tcp``, ``nbthread`` = ``--io-threads``) and ``forwarder`` (``tcp.ioThreads`` =
``--io-threads``). After the interleaved runs each proxy is restarted and its RSS read idle and
with 1,000 idle client connections open through it.

Results (median and min-max over the reps, ratios forwarder/haproxy and forwarder/direct) go to
``OUT/results.json`` (every raw sample, the summary, the machine) and ``OUT/report.md``; when OUT
is inside perf-reports/, ``perf-reports/index.md`` gets (or updates) a line linking to the report.

Python 3.11 standard library only. Needs wrk, iperf3, haproxy and nginx.
Usage: python3 bench/l4/compare.py --help
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
PERF_REPORTS = REPO_ROOT / "perf-reports"
DEFAULT_FORWARDER = REPO_ROOT / "forwarder" / "bin" / "Release" / "net10.0" / "forwarder"
DEFAULT_OUT = PERF_REPORTS / "l4-foundation"

LOOPBACK = "127.0.0.1"
ARMS = ("direct", "haproxy", "forwarder")
IPERF_STREAMS = (1, 4)
IDLE_CONNECTIONS = 1000
MAX_WRK_CONNECTIONS = 4000  # every proxied connection costs the proxy two FDs; the FD limit here is 20,000
HAPROXY_MAXCONN = 8000
NGINX_WORKER_CONNECTIONS = 8192
READY_DEADLINE_S = 30.0
POLL_INTERVAL_S = 0.05
STOP_GRACE_S = 5.0
CLIENT_SLACK_S = 30.0  # how much longer than its duration a wrk/iperf3 run may take before it is killed

# Tool -> places to look when it is not on PATH (/usr/sbin is often missing from a user's PATH).
TOOLS: dict[str, tuple[str, ...]] = {
    "wrk": (),
    "iperf3": (),
    "haproxy": ("/usr/sbin/haproxy",),
    "nginx": ("/usr/sbin/nginx",),
}

# Metrics summarized per test kind, and those that also get forwarder/haproxy and forwarder/direct ratios.
SUMMARY_METRICS: dict[str, tuple[str, ...]] = {
    "http": ("rps", "p50_us", "p75_us", "p90_us", "p99_us", "errors",
             "proxy_cpu_pct", "proxy_cpu_us_per_req", "proxy_rss_kb"),
    "iperf": ("gbps", "proxy_cpu_pct", "proxy_cpu_ms_per_gib", "proxy_rss_kb"),
}
RATIO_METRICS: dict[str, tuple[str, ...]] = {
    "http": ("rps", "p99_us", "proxy_cpu_us_per_req"),
    "iperf": ("gbps", "proxy_cpu_ms_per_gib"),
}
RATIOS = (("forwarder", "haproxy"), ("forwarder", "direct"))


class BenchError(Exception):
    """A process or a run that failed: reported, never silently dropped."""


# ----------------------------------------------------------------------------------------------
# Command line


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def thread_count(text: str) -> str:
    """A positive number of threads, or ``default`` (no setting: each proxy picks its own)."""
    if text != "default":
        positive_int(text)
    return text


def autogroup_nice(text: str) -> int:
    value = int(text)
    if not -20 <= value <= 19:
        raise argparse.ArgumentTypeError(f"must be between -20 and 19: {text}")
    return value


def connection_counts(text: str) -> list[int]:
    """Parse ``32`` or ``32,256`` into a list of wrk connection counts."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers: {text!r}") from None
    if not values or any(not 1 <= v <= MAX_WRK_CONNECTIONS for v in values):
        raise argparse.ArgumentTypeError(f"connection counts must be between 1 and {MAX_WRK_CONNECTIONS}: {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="L4 benchmark: forwarder vs HAProxy (mode tcp) vs direct, interleaved, medians of several reps.")
    parser.add_argument("--forwarder", type=Path, default=DEFAULT_FORWARDER,
                        help="forwarder binary (default: %(default)s)")
    parser.add_argument("--reps", type=positive_int, default=5, help="interleaved repetitions (default: %(default)s)")
    parser.add_argument("--duration", type=positive_int, default=10, help="seconds per wrk run (default: %(default)s)")
    parser.add_argument("--iperf-seconds", type=positive_int, default=5,
                        help="seconds per iperf3 run (default: %(default)s)")
    parser.add_argument("--connections", type=connection_counts, default=[32],
                        help="wrk connection count(s), e.g. 32 or 32,256 (default: 32)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for results.json and report.md (default: %(default)s)")
    parser.add_argument("--skip-build", action="store_true",
                        help="do not run 'dotnet build -c Release forwarder' first")
    parser.add_argument("--io-threads", type=thread_count, default="1",
                        help="forwarder tcp.ioThreads and HAProxy nbthread, or 'default' for each proxy's own "
                             "default: the busy-node case (default: %(default)s)")
    parser.add_argument("--engine", choices=("epoll", "pipes"), default="epoll",
                        help="forwarder tcp.engine (default: %(default)s)")
    parser.add_argument("--shield", type=autogroup_nice, default=None, metavar="NICE",
                        help="autogroup nice (-20..19, below 0 needs root) for every process of the benchmark: on a "
                             "machine shared with other work, the client, backends and proxies then compete mostly "
                             "among themselves, as on a node running only them; their weights relative to each "
                             "other are unchanged (default: none)")
    args = parser.parse_args(argv)
    args.forwarder = args.forwarder.resolve()
    args.out = args.out.resolve()
    return args


@dataclass(frozen=True)
class Test:
    """One measurement done for every arm in every rep."""

    name: str  # http-c32, iperf-P1, ...
    kind: str  # "http" (wrk) or "iperf" (iperf3)
    load: int  # wrk connections or iperf3 parallel streams

    def command(self, args: argparse.Namespace) -> str:
        if self.kind == "http":
            return f"wrk -t1 -c{self.load} -d{args.duration}s --latency http://127.0.0.1:PORT/"
        return f"iperf3 -c 127.0.0.1 -p PORT -t {args.iperf_seconds} -P {self.load} -J"


def make_tests(args: argparse.Namespace) -> list[Test]:
    http = [Test(f"http-c{c}", "http", c) for c in args.connections]
    iperf = [Test(f"iperf-P{n}", "iperf", n) for n in IPERF_STREAMS]
    return http + iperf


# ----------------------------------------------------------------------------------------------
# Small system helpers


def find_tools() -> dict[str, str]:
    """Locate wrk, iperf3, haproxy and nginx; name every missing one."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name, fallbacks in TOOLS.items():
        path = shutil.which(name) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
        if path:
            found[name] = path
        else:
            missing.append(name)
    if missing:
        raise BenchError(f"missing required tool(s): {', '.join(missing)} "
                         f"(on Debian/Ubuntu: apt-get install {' '.join(missing)})")
    return found


def prepare_forwarder(args: argparse.Namespace) -> Path:
    """Build the forwarder unless --skip-build, then check the binary is there."""
    if not args.skip_build:
        dotnet = shutil.which("dotnet")
        if dotnet is None:
            raise BenchError("dotnet not found; install the .NET SDK or pass --skip-build")
        command = [dotnet, "build", "-c", "Release", "forwarder"]
        print(f"building: {shlex.join(command)} (in {REPO_ROOT})", flush=True)
        if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
            raise BenchError("dotnet build failed")
    if not os.access(args.forwarder, os.X_OK):
        raise BenchError(f"forwarder binary not found or not executable: {args.forwarder} "
                         "(build it with 'dotnet build -c Release forwarder' or pass --forwarder)")
    return args.forwarder


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def free_ports(count: int) -> list[int]:
    """Free loopback ports: bind port 0 and read what the kernel chose (all held at once, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = READY_DEADLINE_S,
               failed: Callable[[], str | None] = lambda: None) -> float:
    """Poll ``condition`` until true; return the seconds it took. Raise if ``failed`` reports a problem or on timeout."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        problem = failed()
        if problem:
            raise BenchError(f"while waiting for {what}: {problem}")
        if time.monotonic() - start > deadline_s:
            raise BenchError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET a URL; return (status, body). Raises OSError (URLError included) when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def http_ok(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as error:
        raise BenchError(f"cannot read CPU time of pid {pid}: {error}") from error
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state); utime/stime are fields 14/15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` value (VmRSS, VmHWM) from /proc/PID/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError as error:
        raise BenchError(f"cannot read {key} of pid {pid}: {error}") from error
    raise BenchError(f"no {key} in /proc/{pid}/status")


def established_to(port: int) -> int:
    """Established IPv4 TCP connections whose remote port is ``port`` (the clients' side of them)."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def load_average() -> float:
    """The 1-minute load average: how busy the machine was, beyond the benchmark itself."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def shield(pid: int, nice: int | None) -> None:
    """Give the session of ``pid`` (started with a session of its own) the --shield autogroup nice, if any.

    With autogroups (Linux's default for desktop and server kernels alike) every session is one
    scheduling entity; a low nice on the benchmark's sessions keeps other sessions' work (builds
    on a shared machine) from taking the cores the benchmark shares among its own processes.
    """
    if nice is None:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError as error:
        raise BenchError(f"--shield: cannot set the autogroup nice of pid {pid}: {error}") from error


def first_line(command: list[str]) -> str:
    """First non-empty line a command prints on stdout or stderr (for version strings)."""
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    return next((line.strip() for line in result.stdout.splitlines() if line.strip()), "unknown")


def git(*args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def mem_total_kb() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return None


def machine_info(tools: dict[str, str], forwarder: Path) -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": os.uname().release,
        "mem_total_kb": mem_total_kb(),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "versions": {
            "haproxy": first_line([tools["haproxy"], "-v"]),
            "nginx": first_line([tools["nginx"], "-v"]),
            "wrk": first_line([tools["wrk"], "-v"]),
            "iperf3": first_line([tools["iperf3"], "--version"]),
            "forwarder": first_line([str(forwarder), "--version"]),
        },
        "git_commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


# ----------------------------------------------------------------------------------------------
# Child processes


class Service:
    """A long-running child process in its own process group, with its log file and a readiness check."""

    def __init__(self, name: str, argv: list[str], log_path: Path, ready: Callable[[], bool],
                 nice: int | None) -> None:
        self.name = name
        self.nice = nice
        self.argv = argv
        self.log_path = log_path
        self.ready = ready
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError(f"{self.name} was never started")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> float:
        """Start the process and wait until it is ready; return the seconds that took."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        shield(self.process.pid, self.nice)
        return wait_until(self.ready, f"{self.name} to get ready", failed=self.exit_problem)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def exit_problem(self) -> str | None:
        """None while running; otherwise how the process ended and the tail of its log."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"{self.name} (pid {self.process.pid}) {how}; log tail: {self.log_tail()}"

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period; sweeps leftovers (nginx workers)."""
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the child leads its own group
        if self.process.poll() is None:
            signal_group(pgid, signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        signal_group(pgid, signal.SIGKILL)
        self.process.wait()


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@dataclass(frozen=True)
class Ports:
    nginx: int
    iperf: int
    haproxy_http: int
    haproxy_iperf: int
    forwarder_http: int
    forwarder_iperf: int
    forwarder_admin: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*free_ports(len(dataclasses.fields(cls))))


@dataclass(frozen=True)
class Target:
    """Where an arm's clients connect, and the proxy process in between (None for direct)."""

    arm: str
    http_port: int
    iperf_port: int
    proxy: Service | None


def nginx_config(workdir: Path, port: int) -> str:
    rlimit = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 2 * NGINX_WORKER_CONNECTIONS)
    temp_paths = "\n".join(f"    {kind}_temp_path {workdir}/nginx-{kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""\
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
worker_rlimit_nofile {rlimit};
events {{ worker_connections {NGINX_WORKER_CONNECTIONS}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
{temp_paths}
    server {{
        listen {LOOPBACK}:{port};
        location / {{ return 200 "hello world\\n"; }}
    }}
}}
"""


def haproxy_config(workdir: Path, ports: Ports, threads: str) -> str:
    nbthread = "" if threads == "default" else f"    nbthread {threads}\n"
    return f"""\
global
{nbthread}    maxconn {HAPROXY_MAXCONN}
    stats socket {workdir}/haproxy.sock mode 600 level user

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s

listen http
    bind {LOOPBACK}:{ports.haproxy_http}
    server nginx {LOOPBACK}:{ports.nginx}

listen iperf
    bind {LOOPBACK}:{ports.haproxy_iperf}
    server iperf3 {LOOPBACK}:{ports.iperf}
"""


def haproxy_threads(options: dict) -> str:
    threads = str(options["io_threads"])
    return "default `nbthread` (one thread per core)" if threads == "default" else f"`nbthread {threads}`"


def forwarder_threads(options: dict) -> str:
    threads = str(options["io_threads"])
    return "default `tcp.ioThreads`" if threads == "default" else f"`tcp.ioThreads: {threads}`"


def forwarder_config(ports: Ports, io_threads: str, engine: str) -> str:
    threads = "" if io_threads == "default" else f"ioThreads: {io_threads}, "
    return f"""\
admin: {{ listen: {LOOPBACK}:{ports.forwarder_admin} }}
tcp: {{ {threads}engine: {engine} }}
listeners:
  - name: http
    listen: {LOOPBACK}:{ports.forwarder_http}
    protocol: tcp
    service: nginx
  - name: iperf
    listen: {LOOPBACK}:{ports.forwarder_iperf}
    protocol: tcp
    service: iperf
services:
  nginx:
    endpoints:
      - address: {LOOPBACK}:{ports.nginx}
  iperf:
    endpoints:
      - address: {LOOPBACK}:{ports.iperf}
"""


class Lab:
    """The backends (nginx, iperf3 server) and proxies (HAProxy, forwarder) of one benchmark, on loopback."""

    def __init__(self, tools: dict[str, str], forwarder: Path, io_threads: str, engine: str, workdir: Path,
                 nice: int | None) -> None:
        self.workdir = workdir
        self.ports = p = Ports.pick()
        self.configs = {
            "nginx.conf": nginx_config(workdir, p.nginx),
            "haproxy.cfg": haproxy_config(workdir, p, io_threads),
            "forwarder.yaml": forwarder_config(p, io_threads, engine),
        }
        for name, text in self.configs.items():
            (workdir / name).write_text(text)
        self.admin_url = f"http://{LOOPBACK}:{p.forwarder_admin}"
        self.nginx = Service("nginx", [tools["nginx"], "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
                             workdir / "nginx.out", lambda: tcp_accepts(p.nginx), nice)
        self.iperf = Service("iperf3", [tools["iperf3"], "-s", "-p", str(p.iperf)],
                             workdir / "iperf3.log", lambda: tcp_accepts(p.iperf), nice)
        self.haproxy = Service("haproxy", [tools["haproxy"], "-f", str(workdir / "haproxy.cfg")],
                               workdir / "haproxy.log", lambda: tcp_accepts(p.haproxy_http), nice)
        self.forwarder = Service("forwarder", [str(forwarder), "--config", str(workdir / "forwarder.yaml"),
                                               "--log-level", "Warning"],
                                 workdir / "forwarder.log", lambda: http_ok(f"{self.admin_url}/readyz"), nice)
        self.services = [self.nginx, self.iperf, self.haproxy, self.forwarder]  # backends first
        self.targets = [
            Target("direct", p.nginx, p.iperf, None),
            Target("haproxy", p.haproxy_http, p.haproxy_iperf, self.haproxy),
            Target("forwarder", p.forwarder_http, p.forwarder_iperf, self.forwarder),
        ]
        self.events: list[str] = []

    def start(self) -> None:
        for service in self.services:
            took = service.start()
            print(f"  {service.name:<9} ready in {took:.2f} s (pid {service.pid})", flush=True)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def involved(self, target: Target, test: Test) -> list[Service]:
        backend = self.nginx if test.kind == "http" else self.iperf
        return [backend] if target.proxy is None else [backend, target.proxy]

    def revive(self, services: list[Service]) -> list[str]:
        """Restart any of ``services`` that has exited; return what happened, for the record."""
        revived = []
        for service in services:
            problem = service.exit_problem()
            if problem:
                event = f"restarted {service.name} after: {problem}"
                print(f"  {event}", flush=True)
                self.events.append(event)
                service.start()
                revived.append(event)
        return revived

    def accepted_connections(self, arm: str) -> int:
        """Client connections the proxy of ``arm`` has accepted and holds open (its own count)."""
        try:
            if arm == "forwarder":
                return forwarder_active_connections(self.admin_url, "http")
            return int(haproxy_show_info(self.workdir / "haproxy.sock").get("CurrConns", "0"))
        except (OSError, ValueError):
            return 0


def forwarder_active_connections(admin_url: str, listener: str) -> int:
    _, body = http_get(f"{admin_url}/metrics")
    match = re.search(rf'^forwarder_listener_connections_active\{{listener="{re.escape(listener)}"\}} (\d+)',
                      body, re.MULTILINE)
    return int(match.group(1)) if match else 0


def haproxy_show_info(socket_path: Path) -> dict[str, str]:
    """``show info`` on HAProxy's stats socket, as a dict."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(socket_path))
        sock.sendall(b"show info\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    info = {}
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


# ----------------------------------------------------------------------------------------------
# Clients: wrk and iperf3


_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_WRK_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_TO_MICROSECONDS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def run_client(command: list[str], timeout: float, nice: int | None) -> subprocess.CompletedProcess[str]:
    # A session of its own, so that --shield can prioritize it without touching the caller's.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            shield(process.pid, nice)
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise BenchError(f"{shlex.join(command)} did not finish within {timeout:.0f} s") from None
        except BaseException:
            process.kill()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, request count, latency percentiles (µs) and error counts from ``wrk --latency`` output."""
    rps = _WRK_RPS.search(output)
    requests = _WRK_REQUESTS.search(output)
    if not rps or not requests:
        raise BenchError(f"cannot parse wrk output: {output.strip()[-300:]!r}")
    result: dict[str, Any] = {"rps": float(rps.group(1)), "requests": int(requests.group(1))}
    for percentile, value, unit in _WRK_PERCENTILE.findall(output):
        result[f"p{percentile}_us"] = float(value) * _TO_MICROSECONDS[unit]
    socket_errors = _WRK_SOCKET_ERRORS.search(output)
    non_2xx = _WRK_NON_2XX.search(output)
    result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                       map(int, socket_errors.groups()))) if socket_errors else {}
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    result["errors"] = sum(result["socket_errors"].values()) + result["non_2xx"]
    return result


def run_wrk(wrk: str, port: int, connections: int, duration: int, nice: int | None) -> dict[str, Any]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", f"http://{LOOPBACK}:{port}/"]
    finished = run_client(command, duration + CLIENT_SLACK_S, nice)
    if finished.returncode != 0:
        raise BenchError(f"wrk exited with code {finished.returncode}: {(finished.stderr or finished.stdout).strip()[-300:]}")
    result = parse_wrk(finished.stdout)
    if result["requests"] == 0:
        raise BenchError("wrk completed no request")
    return result


def run_iperf(iperf3: str, port: int, streams: int, seconds: int, nice: int | None) -> dict[str, Any]:
    command = [iperf3, "-c", LOOPBACK, "-p", str(port), "-t", str(seconds), "-P", str(streams), "-J"]
    finished = run_client(command, seconds + CLIENT_SLACK_S, nice)
    try:
        report = json.loads(finished.stdout)
    except json.JSONDecodeError:
        raise BenchError(f"iperf3 printed no JSON (exit {finished.returncode}): "
                         f"{(finished.stderr or finished.stdout).strip()[-300:]}") from None
    if "error" in report:
        raise BenchError(f"iperf3: {report['error']}")
    try:
        received = report["end"]["sum_received"]
        return {
            "gbps": received["bits_per_second"] / 1e9,
            "bytes": received["bytes"],
            "retransmits": report["end"].get("sum_sent", {}).get("retransmits"),
        }
    except (KeyError, TypeError):
        raise BenchError("iperf3 JSON has no end.sum_received") from None


# ----------------------------------------------------------------------------------------------
# Measurement


def measured(proxy: Service | None, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``action``; add the proxy's CPU time over it (before/after difference) and its RSS/HWM after it."""
    if proxy is None:
        return action()
    before = cpu_seconds(proxy.pid)
    start = time.monotonic()
    result = action()
    wall = time.monotonic() - start
    used = cpu_seconds(proxy.pid) - before
    result.update(
        wall_s=wall,
        proxy_cpu_s=used,
        proxy_cpu_pct=100.0 * used / wall,
        proxy_rss_kb=status_kb(proxy.pid, "VmRSS"),
        proxy_hwm_kb=status_kb(proxy.pid, "VmHWM"),
    )
    return result


def add_cpu_efficiency(sample: dict[str, Any]) -> None:
    """Proxy CPU per unit of work: µs per HTTP request, ms per GiB carried."""
    cpu = sample.get("proxy_cpu_s")
    if cpu is None:
        return
    if sample.get("requests"):
        sample["proxy_cpu_us_per_req"] = cpu * 1e6 / sample["requests"]
    if sample.get("bytes"):
        sample["proxy_cpu_ms_per_gib"] = cpu * 1e3 / (sample["bytes"] / 2**30)


def settle(services: list[Service], timeout_s: float = 1.0) -> None:
    """Wait briefly for any of ``services`` that is exiting, so a failure is blamed on the right cause."""
    deadline = time.monotonic() + timeout_s
    for service in services:
        if service.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(max(0.0, deadline - time.monotonic()))


def run_sample(lab: Lab, tools: dict[str, str], target: Target, test: Test, rep: int,
               args: argparse.Namespace) -> dict[str, Any]:
    """One wrk or iperf3 run through one arm. A failure is recorded in the sample, not raised."""
    sample: dict[str, Any] = {"rep": rep, "arm": target.arm, "test": test.name, "ok": False,
                              "load_average": load_average()}
    involved = lab.involved(target, test)
    try:
        revived = lab.revive(involved)
        if revived:
            sample["revived"] = revived
        if test.kind == "http":
            result = measured(target.proxy, lambda: run_wrk(tools["wrk"], target.http_port, test.load, args.duration,
                                                              args.shield))
        else:
            result = measured(target.proxy, lambda: run_iperf(tools["iperf3"], target.iperf_port, test.load,
                                                              args.iperf_seconds, args.shield))
        sample.update(result)
        problems = [p for p in (s.exit_problem() for s in involved) if p]
        if problems:
            raise BenchError("; ".join(problems))
        if sample.get("errors"):
            # Failed requests (socket errors, timeouts, non-2xx) make the run's req/s and latency a
            # failing arm's figures: the run is failed, kept out of the medians and listed.
            raise BenchError(f"wrk reported {sample['errors']} failed requests "
                             f"(socket errors {sample.get('socket_errors') or {}}, non-2xx {sample.get('non_2xx', 0)})")
        add_cpu_efficiency(sample)
        sample["ok"] = True
    except BenchError as error:
        settle(involved)  # a proxy killed mid-run resets the client before it is reaped: give it a moment
        problems = [p for p in (s.exit_problem() for s in involved) if p]
        sample["error"] = "; ".join([str(error), *[p for p in problems if p not in str(error)]])
        if test.kind == "iperf" and lab.iperf.running():
            lab.iperf.restart()  # an aborted test can leave the server busy
    return sample


def format_latency(us: float) -> str:
    if us < 1e3:
        return f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.2f} ms"
    return f"{us / 1e6:.2f} s"


def progress_line(sample: dict[str, Any], reps: int) -> str:
    head = f"[rep {sample['rep']}/{reps}] {sample['arm']:<9} {sample['test']:<10}"
    if not sample["ok"]:
        return f"{head} ERROR: {sample['error']}"
    if "rps" in sample:
        body = f"{sample['rps']:>10,.0f} req/s  p50 {format_latency(sample.get('p50_us', 0))}" \
               f"  p99 {format_latency(sample.get('p99_us', 0))}"
        if sample["errors"]:
            body += f"  errors {sample['errors']}"
    else:
        body = f"{sample['gbps']:>7.2f} Gbit/s"
    if "proxy_cpu_pct" in sample:
        body += f"  proxy CPU {sample['proxy_cpu_pct']:.0f}%  RSS {sample['proxy_rss_kb'] / 1024:.1f} MiB"
    return f"{head} {body}"


def run_interleaved(lab: Lab, tools: dict[str, str], tests: list[Test], args: argparse.Namespace) -> list[dict[str, Any]]:
    """for rep: for arm: every test. Interleaving spreads drift (thermal, neighbours) over all arms."""
    samples = []
    for rep in range(1, args.reps + 1):
        for target in lab.targets:
            for test in tests:
                sample = run_sample(lab, tools, target, test, rep, args)
                print(progress_line(sample, args.reps), flush=True)
                samples.append(sample)
    return samples


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """Open ``count`` client connections to ``port`` that send nothing; close them on exit."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                sockets.append(socket.create_connection((LOOPBACK, port), timeout=10))
            except OSError as error:
                raise BenchError(f"opening idle connection {len(sockets) + 1}/{count} to port {port}: {error}") from error
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def measure_proxy_memory(lab: Lab, target: Target) -> dict[str, Any]:
    """RSS after the benchmark, then on a fresh process: idle, and with IDLE_CONNECTIONS idle connections."""
    proxy = target.proxy
    assert proxy is not None
    entry: dict[str, Any] = {"connections": IDLE_CONNECTIONS}
    try:
        if proxy.running():
            entry["after_benchmark_rss_kb"] = status_kb(proxy.pid, "VmRSS")
            entry["after_benchmark_hwm_kb"] = status_kb(proxy.pid, "VmHWM")
        proxy.restart()
        entry["idle_rss_kb"] = status_kb(proxy.pid, "VmRSS")
        entry["idle_anon_kb"] = status_kb(proxy.pid, "RssAnon")
        upstream_before = established_to(lab.ports.nginx)
        with idle_connections(target.http_port, IDLE_CONNECTIONS):
            took = wait_until(
                lambda: lab.accepted_connections(target.arm) >= IDLE_CONNECTIONS
                and established_to(lab.ports.nginx) >= upstream_before + IDLE_CONNECTIONS,
                f"{target.arm} to accept {IDLE_CONNECTIONS} connections and connect them upstream",
                failed=proxy.exit_problem)
            entry["accept_wait_s"] = took
            entry["loaded_rss_kb"] = status_kb(proxy.pid, "VmRSS")
            entry["loaded_anon_kb"] = status_kb(proxy.pid, "RssAnon")
            entry["loaded_hwm_kb"] = status_kb(proxy.pid, "VmHWM")
        entry["per_connection_kb"] = (entry["loaded_rss_kb"] - entry["idle_rss_kb"]) / IDLE_CONNECTIONS
    except BenchError as error:
        entry["error"] = str(error)
    return entry


def measure_memory(lab: Lab) -> dict[str, dict[str, Any]]:
    memory = {}
    for target in lab.targets:
        if target.proxy is None:
            continue
        entry = measure_proxy_memory(lab, target)
        memory[target.arm] = entry
        if "error" in entry:
            print(f"  {target.arm:<9} memory: ERROR: {entry['error']}", flush=True)
        else:
            print(f"  {target.arm:<9} RSS idle {entry['idle_rss_kb'] / 1024:.1f} MiB "
                  f"(private {entry['idle_anon_kb'] / 1024:.1f} MiB), "
                  f"with {IDLE_CONNECTIONS} idle connections {entry['loaded_rss_kb'] / 1024:.1f} MiB "
                  f"(private {entry['loaded_anon_kb'] / 1024:.1f} MiB; "
                  f"{entry['per_connection_kb']:.1f} KiB per connection)", flush=True)
    return memory


# ----------------------------------------------------------------------------------------------
# Summary


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(samples: list[dict[str, Any]], tests: list[Test]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per test, per arm: run counts and median/min/max of every summary metric over the successful runs."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for test in tests:
        summary[test.name] = {}
        for arm in ARMS:
            runs = [s for s in samples if s["test"] == test.name and s["arm"] == arm]
            ok = [s for s in runs if s["ok"]]
            entry: dict[str, Any] = {"runs": len(runs), "ok": len(ok)}
            for metric in SUMMARY_METRICS[test.kind]:
                values = [s[metric] for s in ok if s.get(metric) is not None]
                if values:
                    entry[metric] = spread(values)
            if "errors" in entry:
                entry["errors"]["total"] = sum(s["errors"] for s in ok)
            summary[test.name][arm] = entry
    return summary


def ratios(summary: dict[str, dict[str, dict[str, Any]]], tests: list[Test]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Ratios of medians, e.g. forwarder/haproxy req/s (> 1: forwarder higher)."""
    result: dict[str, dict[str, dict[str, float | None]]] = {}
    for test in tests:
        result[test.name] = {}
        for numerator, denominator in RATIOS:
            row: dict[str, float | None] = {}
            for metric in RATIO_METRICS[test.kind]:
                top = summary[test.name][numerator].get(metric)
                bottom = summary[test.name][denominator].get(metric)
                row[metric] = top["median"] / bottom["median"] if top and bottom and bottom["median"] else None
            result[test.name][f"{numerator}/{denominator}"] = row
    return result


def rep_ratios(samples: list[dict[str, Any]], tests: list[Test]) -> dict[str, dict[str, list[float]]]:
    """forwarder/haproxy per repetition (both runs of the rep ok), per ratio metric: noise shared by a rep cancels."""
    result: dict[str, dict[str, list[float]]] = {}
    for test in tests:
        runs = {(s["rep"], s["arm"]): s for s in samples if s["test"] == test.name and s["ok"]}
        reps = sorted({rep for rep, arm in runs if arm == "forwarder" and (rep, "haproxy") in runs})
        result[test.name] = {
            metric: [runs[(rep, "forwarder")][metric] / runs[(rep, "haproxy")][metric] for rep in reps]
            for metric in RATIO_METRICS[test.kind]
            if all(runs[(rep, arm)].get(metric) for rep in reps for arm in ("forwarder", "haproxy"))
        }
    return result


# ----------------------------------------------------------------------------------------------
# Report


def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def fmt_gbps(v: float) -> str:
    return f"{v:.2f}"


def fmt_pct(v: float) -> str:
    return f"{v:.0f}%"


def fmt_mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


def fmt_one_decimal(v: float) -> str:
    return f"{v:.1f}"


def cell(stats: dict[str, Any] | None, fmt: Callable[[float], str]) -> str:
    """``median [min–max]`` (just the value for a single run; an em dash when there is none)."""
    if not stats:
        return "—"
    if stats["n"] == 1:
        return fmt(stats["median"])
    return f"{fmt(stats['median'])} [{fmt(stats['min'])}–{fmt(stats['max'])}]"


def ratio_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


HTTP_COLUMNS: list[tuple[str, str, Callable[[float], str]]] = [
    ("req/s", "rps", fmt_int),
    ("p50", "p50_us", format_latency),
    ("p90", "p90_us", format_latency),
    ("p99", "p99_us", format_latency),
    ("proxy CPU (% of a core)", "proxy_cpu_pct", fmt_pct),
    ("proxy CPU µs/request", "proxy_cpu_us_per_req", fmt_one_decimal),
    ("proxy RSS after run", "proxy_rss_kb", fmt_mib),
]
IPERF_COLUMNS: list[tuple[str, str, Callable[[float], str]]] = [
    ("Gbit/s", "gbps", fmt_gbps),
    ("proxy CPU (% of a core)", "proxy_cpu_pct", fmt_pct),
    ("proxy CPU ms/GiB", "proxy_cpu_ms_per_gib", fmt_int),
    ("proxy RSS after run", "proxy_rss_kb", fmt_mib),
]
RATIO_LABELS = {"rps": "req/s", "p99_us": "p99 latency", "proxy_cpu_us_per_req": "proxy CPU per request",
                "gbps": "Gbit/s", "proxy_cpu_ms_per_gib": "proxy CPU per GiB"}
RATIO_FORMATS: dict[str, Callable[[float], str]] = {
    "rps": fmt_int, "p99_us": format_latency, "proxy_cpu_us_per_req": lambda v: f"{v:.1f} µs",
    "gbps": lambda v: f"{v:.2f} Gbit/s", "proxy_cpu_ms_per_gib": lambda v: f"{v:,.0f} ms"}


def test_section(test: dict[str, Any], results: dict[str, Any]) -> list[str]:
    name, kind = test["name"], test["kind"]
    columns = HTTP_COLUMNS if kind == "http" else IPERF_COLUMNS
    summary = results["summary"][name]
    header = ["arm", *[label for label, _, _ in columns], "runs ok"]
    if kind == "http":
        header.insert(-1, "errors")
    rows = []
    for arm in ARMS:
        entry = summary[arm]
        row = [arm, *[cell(entry.get(metric), fmt) for _, metric, fmt in columns]]
        if kind == "http":
            row.append(fmt_int(entry["errors"]["total"]) if "errors" in entry else "—")
        row.append(f"{entry['ok']}/{entry['runs']}")
        rows.append(row)
    title = (f"HTTP over L4, {test['load']} connections" if kind == "http"
             else f"Bulk throughput, iperf3 {test['load']} stream{'s' if test['load'] > 1 else ''}")
    lines = [f"### {title} (`{name}`)", "", f"`{test['command']}`", ""]
    lines += markdown_table(header, rows)
    metrics = RATIO_METRICS[kind]
    ratio_rows = [[pair, *[ratio_cell(values[m]) for m in metrics]] for pair, values in results["ratios"][name].items()]
    lines += ["", *markdown_table(["ratio of medians", *[RATIO_LABELS[m] for m in metrics]], ratio_rows)]
    by_rep = results["rep_ratios"][name]
    if by_rep:
        lines += ["", "Rep by rep, forwarder/haproxy (median; each rep's value):", ""]
        lines += [f"- {RATIO_LABELS[m]}: **{statistics.median(v):.2f}** ({', '.join(f'{x:.2f}' for x in v)})"
                  for m, v in by_rep.items()]
    loads = [s["load_average"] for s in results["samples"] if s["test"] == name and "load_average" in s]
    if loads:
        lines += ["", f"1-minute load average as the runs started: median {statistics.median(loads):.1f} "
                  f"[{min(loads):.1f}–{max(loads):.1f}] (the benchmark itself accounts for about 3)."]
    lines += ["", "A ratio above 1 means the forwarder's value is higher: better for throughput, "
              "worse for latency and CPU.", ""]
    return lines


def memory_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for arm, entry in results["memory"].items():
        if "error" in entry:
            rows.append([arm, "error", "error", "—", "—"])
            continue
        after = (f"{fmt_mib(entry['after_benchmark_rss_kb'])} / {fmt_mib(entry['after_benchmark_hwm_kb'])}"
                 if "after_benchmark_rss_kb" in entry else "—")
        rows.append([arm, fmt_mib(entry["idle_rss_kb"]), fmt_mib(entry["idle_anon_kb"]),
                     fmt_mib(entry["loaded_rss_kb"]), fmt_mib(entry["loaded_anon_kb"]),
                     f"{entry['per_connection_kb']:.1f} KiB", after])
    header = ["proxy", "RSS idle (fresh)", "private (RssAnon) idle", f"RSS, {IDLE_CONNECTIONS:,} idle connections",
              f"private, {IDLE_CONNECTIONS:,} idle connections", "RSS per connection",
              "after the benchmark: RSS / peak (VmHWM)"]
    note = ("RSS counts file-backed pages too (the .NET runtime's and assemblies' mapped code, shared "
            "between processes and reclaimable); RssAnon is the process's private memory.")
    return ["## Memory", "", *markdown_table(header, rows), "", note, ""]


def errors_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Errors and restarts", ""]
    failures = [s for s in results["samples"] if not s["ok"]]
    failures_text = [f"- rep {s['rep']}, {s['arm']}, {s['test']}: {s['error']}" for s in failures]
    memory_text = [f"- memory, {arm}: {e['error']}" for arm, e in results["memory"].items() if "error" in e]
    events_text = [f"- {event}" for event in results["events"]]
    return lines + (failures_text + memory_text + events_text or ["None."]) + [""]


def method_section(results: dict[str, Any]) -> list[str]:
    m, o = results["machine"], results["options"]
    v = m["versions"]
    dirty = " (with uncommitted changes)" if m["git_dirty"] else ""
    return [
        "## How",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, "
        f"open-file limit {m['fd_limit']}. Everything on loopback, on the same cores.",
        f"- Versions: {v['haproxy']}; {v['nginx']}; {v['wrk']}; {v['iperf3']}; forwarder {v['forwarder']}, "
        f"repo commit `{m['git_commit']}`{dirty}.",
        "- Backends: nginx (1 worker, `return 200 \"hello world\\n\"`, keepalive) and an `iperf3 -s` server.",
        f"- Arms: `direct` (client to backend: the ceiling), `haproxy` (`mode tcp`, {haproxy_threads(o)}, "
        f"`maxconn {HAPROXY_MAXCONN}`), `forwarder` ({forwarder_threads(o)}, "
        f"`tcp.engine: {o.get('engine', 'epoll')}`, `--log-level Warning`).",
        f"- {o['reps']} rep(s), interleaved: for each rep, for each arm, every test in turn. "
        "Cells are median [min–max] over the successful reps; ratios are ratios of medians.",
        *([f"- Shielded: every process of the benchmark (client, backends, proxies) ran in a session of its own "
           f"with autogroup nice {o['shield']}, so other work on the machine took little of its cores; "
           "among themselves they competed with equal weights, as on a node running only them."]
          if o.get("shield") is not None else []),
        "- Proxy CPU: utime+stime of the proxy process (all threads) over the client run, from /proc/PID/stat; "
        "% of one core = CPU seconds / wall seconds. RSS/HWM from /proc/PID/status after each run.",
        f"- Memory: after the runs each proxy is restarted; RSS is read once ready (idle) and again with "
        f"{IDLE_CONNECTIONS:,} idle client connections open through it (accepted by the proxy, as its own count "
        "says, and connected upstream to nginx).",
        "",
    ]


def render_report(results: dict[str, Any]) -> str:
    lines = [
        "# L4 TCP: forwarder vs HAProxy vs direct",
        "",
        f"Run {results['started']} – {results['finished']}, commit `{results['machine']['git_commit']}`.",
        "",
        "## Results",
        "",
    ]
    for test in results["tests"]:
        lines += test_section(test, results)
    lines += memory_section(results)
    lines += errors_section(results)
    lines += method_section(results)
    lines += ["## Command", "", "```sh", results["command"], "```", "", "## Configs (ports vary per run)", ""]
    for name, text in results["configs"].items():
        lines += [f"`{name}`", "", "```", text.rstrip(), "```", ""]
    return "\n".join(lines)


def update_index(out_dir: Path, results: dict[str, Any]) -> Path | None:
    """Add (or replace) this report's line in perf-reports/index.md, if the report lives under perf-reports/."""
    try:
        relative = out_dir.relative_to(PERF_REPORTS.resolve()).as_posix()
    except ValueError:
        return None
    index = PERF_REPORTS / "index.md"
    link = f"]({relative}/report.md)"
    versions = results["machine"]["versions"]
    haproxy = re.search(r"HAProxy version (\S+)", versions["haproxy"])
    entry = (f"- [{relative}]({relative}/report.md) — L4 TCP: forwarder vs HAProxy "
             f"{haproxy.group(1) if haproxy else ''} (mode tcp) vs direct; wrk + iperf3 + RSS; "
             f"{results['finished'][:10]}, commit `{results['machine']['git_commit']}`")
    lines = index.read_text().splitlines() if index.exists() else ["# Performance reports", ""]
    kept = [line for line in lines if link not in line]
    if len(kept) == len(lines):
        kept.append(entry)
    else:
        kept.insert(next(i for i, line in enumerate(lines) if link in line), entry)
    index.write_text("\n".join(kept) + "\n")
    return index


def write_outputs(out_dir: Path, results: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_report(results))
    print(f"\nwrote {out_dir / 'results.json'} and {out_dir / 'report.md'}")
    index = update_index(out_dir, results)
    print(f"updated {index}" if index else "perf-reports/index.md not updated (--out is outside perf-reports/)")


def print_summary(results: dict[str, Any]) -> None:
    print("\nmedians and ratios of medians:")
    for test in results["tests"]:
        name = test["name"]
        for metric in RATIO_METRICS[test["kind"]]:
            medians = []
            for arm in ARMS:
                stats = results["summary"][name][arm].get(metric)
                if stats:
                    medians.append(f"{arm} {RATIO_FORMATS[metric](stats['median'])}")
            r = results["ratios"][name]
            print(f"  {name:<10} {RATIO_LABELS[metric]:<22} {', '.join(medians)}  ->  "
                  f"forwarder/haproxy {ratio_cell(r['forwarder/haproxy'][metric])}, "
                  f"forwarder/direct {ratio_cell(r['forwarder/direct'][metric])}")
    for arm, entry in results["memory"].items():
        if "error" not in entry:
            print(f"  RSS {arm:<9} idle {fmt_mib(entry['idle_rss_kb'])} (private {fmt_mib(entry['idle_anon_kb'])}), "
                  f"{IDLE_CONNECTIONS} idle connections {fmt_mib(entry['loaded_rss_kb'])} "
                  f"(private {fmt_mib(entry['loaded_anon_kb'])})")


# ----------------------------------------------------------------------------------------------
# Main


def terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while children are being stopped, so cleanup cannot be cut short."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def estimated_duration(args: argparse.Namespace, tests: list[Test]) -> str:
    per_arm = sum(args.duration if t.kind == "http" else args.iperf_seconds for t in tests) + 2 * len(tests)
    seconds = args.reps * len(ARMS) * per_arm + 10
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    command = shlex.join(["python3", *sys.argv]) if argv is None else shlex.join(["python3", __file__, *argv])
    try:
        tools = find_tools()
        forwarder = prepare_forwarder(args)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    raise_fd_limit()
    tests = make_tests(args)
    machine = machine_info(tools, forwarder)
    workdir = Path(tempfile.mkdtemp(prefix="l4-bench-"))
    lab = Lab(tools, forwarder, args.io_threads, args.engine, workdir, args.shield)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(f"L4 benchmark: arms {', '.join(ARMS)}; tests {', '.join(t.name for t in tests)}; "
          f"{args.reps} rep(s), about {estimated_duration(args, tests)}; work dir {workdir}", flush=True)
    failed = True
    try:
        lab.start()
        samples = run_interleaved(lab, tools, tests, args)
        print("memory (fresh proxies):", flush=True)
        memory = measure_memory(lab)
        failed = any(not s["ok"] for s in samples) or any("error" in e for e in memory.values())
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        with signals_deferred():
            lab.stop()
        if failed:
            print(f"logs and configs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = summarize(samples, tests)
    results = {
        "started": started,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine,
        "tests": [{**dataclasses.asdict(t), "command": t.command(args)} for t in tests],
        "arms": list(ARMS),
        "summary": summary,
        "ratios": ratios(summary, tests),
        "rep_ratios": rep_ratios(samples, tests),
        "memory": memory,
        "events": lab.events,
        "configs": lab.configs,
        "samples": samples,
    }
    write_outputs(args.out, results)
    print_summary(results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
