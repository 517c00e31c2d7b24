#!/usr/bin/env python3
"""The per-request profile behind prof-*.log (perf-reports/busy-node/README.md, 2026-12-08 (overload)).

Starts nginx, HAProxy (default nbthread) and forwarder arms NAME=BINARY; per arm runs wrk -t1 -c32 and, 2 s in,
`perf stat`s the proxy's system calls and scheduler events for 3 s, and reads each thread's /proc schedstat and
voluntary/involuntary switches over that window (per request = per wrk request in the window). Needs root for perf.
    setsid -w python3 perf-reports/busy-node/2026-12-08-overload/prof.py --arm spill=forwarder/bin/Release/net10.0/forwarder
"""
import sys, os, time, subprocess, tempfile, argparse
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "l4"))
import compare as c
ap = argparse.ArgumentParser()
ap.add_argument("--arm", action="append", default=[])
ap.add_argument("--duration", type=int, default=8)
ap.add_argument("--record", action="store_true")
a = ap.parse_args()
c.raise_fd_limit(); tools = c.find_tools()
work = Path(tempfile.mkdtemp(prefix="prof-"))
ports = c.free_ports(2 + 2 * len(a.arm)); nginx_port, hap_port = ports[0], ports[1]
(work / "nginx.conf").write_text(c.nginx_config(work, nginx_port))
(work / "haproxy.cfg").write_text(f"""global
    maxconn 8000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
listen http
    bind 127.0.0.1:{hap_port}
    server nginx 127.0.0.1:{nginx_port}
""")
services = [c.Service("nginx", [tools["nginx"], "-c", str(work / "nginx.conf"), "-p", str(work)], work / "nginx.out", lambda: c.tcp_accepts(nginx_port), None)]
h = c.Service("haproxy", [tools["haproxy"], "-f", str(work / "haproxy.cfg")], work / "haproxy.log", lambda: c.tcp_accepts(hap_port), None)
services.append(h); arms = [("haproxy", hap_port, h)]
for i, spec in enumerate(a.arm):
    name, binary = spec.split("=", 1)
    port, admin = ports[2 + 2 * i], ports[3 + 2 * i]
    cfg = work / f"{name}.yaml"
    cfg.write_text(f"""admin: {{ listen: 127.0.0.1:{admin} }}
listeners:
  - name: http
    listen: 127.0.0.1:{port}
    protocol: tcp
    service: nginx
services:
  nginx:
    endpoints:
      - address: 127.0.0.1:{nginx_port}
""")
    s = c.Service(name, [binary, "--config", str(cfg), "--log-level", "Warning"], work / f"{name}.log", (lambda port=port: c.tcp_accepts(port)), None)
    services.append(s); arms.append((name, port, s))
def tasks(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            run, wait, sl = map(int, open(f"/proc/{pid}/task/{t}/schedstat").read().split())
            st = dict(l.split(":", 1) for l in open(f"/proc/{pid}/task/{t}/status").read().splitlines() if ":" in l)
            out[t] = (comm, run, wait, sl, int(st["voluntary_ctxt_switches"]), int(st["nonvoluntary_ctxt_switches"]))
        except OSError: pass
    return out
for s in services: s.start()
time.sleep(1)
try:
    for name, port, svc in arms:
        wrk = subprocess.Popen([tools["wrk"], "-t1", "-c32", f"-d{a.duration}s", "--latency", f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        t0 = tasks(svc.pid); w0 = time.monotonic()
        ev = "syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_ctl,sched:sched_switch,sched:sched_wakeup,sched:sched_migrate_task"
        if a.record:
            p = subprocess.run(["perf", "record", "-q", "-o", f"/tmp/ovl/{name}.data", "-e", "sched:sched_switch,sched:sched_wakeup,syscalls:sys_exit_epoll_wait,syscalls:sys_exit_epoll_pwait", "-p", str(svc.pid), "--", "sleep", "3"], capture_output=True, text=True)
        p = subprocess.run(["perf", "stat", "-x,", "-e", ev, "-p", str(svc.pid), "--", "sleep", "3"], capture_output=True, text=True)
        t1 = tasks(svc.pid); w1 = time.monotonic()
        out = wrk.communicate()[0]; r = c.parse_wrk(out)
        rps = r["rps"]; reqs = rps * (w1 - w0)
        print(f"== {name}: {rps:,.0f} req/s p50 {r['p50_us']:.0f} p99 {r['p99_us']:.0f} load {open('/proc/loadavg').read().split()[0]}")
        for line in p.stderr.splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].replace('.', '').isdigit():
                print(f"   {f[2]:<40} {int(float(f[0]))/reqs:8.3f}/req")
        for t, v in t1.items():
            if t in t0:
                d = [v[i] - t0[t][i] for i in range(1, 6)]
                if d[2] or d[0] > 1e6:
                    print(f"   task {v[0]:<16} run {d[0]/1e3/reqs:6.2f}us/req wait {d[1]/1e3/reqs:6.2f}us/req ({d[1]/1e7/(w1-w0):.0f}%) run% {d[0]/1e7/(w1-w0):.0f} slices/req {d[2]/reqs:.3f} vol/req {d[3]/reqs:.3f} invol/req {d[4]/reqs:.3f}")
finally:
    for s in reversed(services): s.stop()
