#!/usr/bin/env python3
"""Memory of idle connections: how much each one costs a proxy, and whether it comes back.

For each arm (a forwarder binary with some environment, or HAProxy ``mode tcp``) and each cycle:
start the proxy in front of a backend that accepts and holds, read its RSS idle, open N client
connections through it and hold them (no bytes sent), read RSS once the backend holds N, close
them all, then read RSS every second for ``--settle`` seconds. Cycles run interleaved arm by arm
on one proxy process per arm, so growth over cycles shows.

RSS is VmRSS from /proc/PID/status. Per connection = (RSS at N - RSS idle before the cycle) / N.

Python 3.11 standard library only; needs haproxy for the haproxy arm.
Usage: python3 bench/memory/idle_conns.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FORWARDER = REPO_ROOT / "forwarder" / "bin" / "Release" / "net10.0" / "forwarder"
LOOPBACK = "127.0.0.1"
DEADLINE_S = 120.0

# The backend: accepts and holds every connection, closes one when its client closes, and prints
# how many it holds whenever that changes (at most every 50 ms), so the driver can wait on it.
BACKEND = r"""
import os, resource, selectors, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
lsock = socket.socket(); lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0)); lsock.listen(4096); lsock.setblocking(False)
print(lsock.getsockname()[1], flush=True)
sel = selectors.DefaultSelector(); sel.register(lsock, selectors.EVENT_READ)
held = 0; told = -1; last = 0.0
while True:
    for key, _ in sel.select(0.05):
        if key.fileobj is lsock:
            while True:
                try: conn, _ = lsock.accept()
                except BlockingIOError: break
                conn.setblocking(False); sel.register(conn, selectors.EVENT_READ); held += 1
        else:
            try: data = key.fileobj.recv(65536)
            except (BlockingIOError, InterruptedError): continue
            except OSError: data = b""
            if not data:
                sel.unregister(key.fileobj); key.fileobj.close(); held -= 1
    now = time.monotonic()
    if held != told and now - last > 0.05:
        print(held, flush=True); told = held; last = now
"""


@dataclass
class Cycle:
    idle_before_kb: int
    at_n_kb: int
    after_kb: list[int] = field(default_factory=list)  # one sample per second after closing


@dataclass
class Arm:
    name: str
    kind: str  # forwarder | haproxy
    binary: str
    env: dict[str, str]
    cycles: list[Cycle] = field(default_factory=list)
    start_kb: int = 0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Backend:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BACKEND], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())  # type: ignore[union-attr]
        self.held = 0

    def wait_held(self, count: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while self.held != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"backend holds {self.held}, expected {count}")
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("backend exited")
            self.held = int(line)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def start_proxy(arm: Arm, listen: int, backend: int, count: int, workdir: Path) -> subprocess.Popen[bytes]:
    if arm.kind == "haproxy":
        # HAProxy sizes its fd limit from maxconn (two per connection) and refuses to start above the hard limit.
        maxconn = count + 100
        config = workdir / f"{arm.name}.cfg"
        config.write_text(
            f"global\n    maxconn {maxconn}\n    nbthread 2\n\n"
            "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 600s\n    timeout server 600s\n\n"
            f"frontend idle\n    bind {LOOPBACK}:{listen}\n    maxconn {maxconn}\n    default_backend b\n\n"
            f"backend b\n    server b1 {LOOPBACK}:{backend} maxconn {maxconn}\n")
        command = [arm.binary, "-f", str(config)]
    else:
        config = workdir / f"{arm.name}.yaml"
        config.write_text(
            "listeners:\n"
            f"  - name: idle\n    listen: {LOOPBACK}:{listen}\n    service: backend\n"
            "services:\n"
            f"  backend:\n    endpoints:\n      - address: {LOOPBACK}:{backend}\n")
        command = [arm.binary, "--config", str(config), "--log-level", "Warning"]
    env = {**os.environ, **arm.env}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(listen)
    return proc


def open_connections(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        client = socket.socket()
        client.connect((LOOPBACK, port))
        sockets.append(client)
    return sockets


def run_arm(arm: Arm, count: int, cycles: int, settle: int, warmup: float, workdir: Path) -> None:
    backend = Backend()
    listen = free_port()
    proxy = start_proxy(arm, listen, backend.port, count, workdir)
    try:
        # The probe that found the port open made one connection: wait until it is gone.
        time.sleep(warmup)
        arm.start_kb = rss_kb(proxy.pid)
        for number in range(cycles):
            before = rss_kb(proxy.pid)
            clients = open_connections(listen, count)
            backend.wait_held(count)
            time.sleep(2)
            at_n = rss_kb(proxy.pid)
            for client in clients:
                client.close()
            backend.wait_held(0)
            cycle = Cycle(before, at_n)
            for _ in range(settle):
                time.sleep(1)
                cycle.after_kb.append(rss_kb(proxy.pid))
            arm.cycles.append(cycle)
            per_conn = (at_n - before) * 1024 / count
            print(f"{arm.name} cycle {number + 1}: idle {before / 1024:.1f} MB, at {count} {at_n / 1024:.1f} MB "
                  f"({per_conn / 1024:.2f} KB/conn), {settle} s after close {cycle.after_kb[-1] / 1024:.1f} MB",
                  flush=True)
    finally:
        proxy.send_signal(signal.SIGKILL)
        proxy.wait()
        backend.stop()


def parse_arm(text: str) -> Arm:
    """NAME=BINARY[,VAR=VALUE...]; BINARY 'haproxy' means HAProxy, 'forwarder' the Release build."""
    name, _, rest = text.partition("=")
    binary, *settings = rest.split(",")
    env = dict(setting.split("=", 1) for setting in settings if setting)
    if binary == "haproxy":
        return Arm(name, "haproxy", shutil.which("haproxy") or "/usr/sbin/haproxy", env)
    path = DEFAULT_FORWARDER if binary == "forwarder" else Path(binary)
    if not path.exists():
        raise SystemExit(f"--arm {name}: no binary at {path}")
    return Arm(name, "forwarder", str(path), env)


def report(arms: list[Arm], count: int, settle: int) -> str:
    """Per connection: (RSS at N - RSS idle before that cycle) / N; cycle 1 runs on a fresh process."""
    lines = [
        f"| arm | RSS at start | idle before each cycle | at {count:,} | per connection | {settle} s after close |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        def mb(kb: int) -> str:
            return f"{kb / 1024:.0f}"
        per_conn = " / ".join(f"{(c.at_n_kb - c.idle_before_kb) / count:.2f}" for c in arm.cycles)
        lines.append(
            f"| {arm.name} | {mb(arm.start_kb)} MB | {' / '.join(mb(c.idle_before_kb) for c in arm.cycles)} MB "
            f"| {' / '.join(mb(c.at_n_kb) for c in arm.cycles)} MB | {per_conn} KB "
            f"| {' / '.join(mb(c.after_kb[-1]) for c in arm.cycles)} MB |")
    return "\n".join(lines) + "\n"


def load(path: Path) -> list[Arm]:
    arms = []
    for raw in json.loads(path.read_text()):
        cycles = [Cycle(**cycle) for cycle in raw.pop("cycles")]
        arms.append(Arm(**raw, cycles=cycles))
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", action="append", type=parse_arm, default=[],
                        help="NAME=BINARY[,VAR=VALUE...]: BINARY is a path, 'forwarder' (the Release build) or 'haproxy'; "
                             "VAR=VALUE go to its environment (e.g. DOTNET_GCConserveMemory=5). Repeat for more arms.")
    parser.add_argument("--connections", type=int, default=9500)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--settle", type=int, default=30, help="seconds of RSS samples after closing")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds between start and the first idle reading")
    parser.add_argument("--json", type=Path, help="write every sample here")
    parser.add_argument("--report", type=Path, help="print the table of a --json file written before, and run nothing")
    args = parser.parse_args()
    if args.report:
        arms = load(args.report)
        print(report(arms, args.connections, len(arms[0].cycles[0].after_kb)))
        return
    if not args.arm:
        parser.error("give at least one --arm")

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if 2 * args.connections + 300 > hard:
        raise SystemExit(f"--connections {args.connections} needs more than the fd limit {hard}")

    with tempfile.TemporaryDirectory(prefix="idle-conns-") as workdir:
        for arm in args.arm:
            run_arm(arm, args.connections, args.cycles, args.settle, args.warmup, Path(workdir))

    print()
    print(report(args.arm, args.connections, args.settle))
    if args.json:
        args.json.write_text(json.dumps([asdict(arm) for arm in args.arm], indent=1))


if __name__ == "__main__":
    main()
