#!/usr/bin/env python3
"""The quick A/B harness behind ab*.json (perf-reports/busy-node/README.md, 2026-12-07).

HAProxy (default nbthread) against forwarder arms, wrk -t1 -cN through a tcp listener, arms rotated
each rep. An arm is NAME=BINARY[#IO_THREADS][:ENV=V,...][@NICE,SLICE_NS,THREAD_PREFIX]; the @ part
sets the nice and the EEVDF slice (sched_setattr) of the forwarder's threads named THREAD_PREFIX*.
Per run it records the proxy's run-queue wait (/proc schedstat), the machine's idle share and the
1-minute load average. --autogroup-nice shields the benchmark's sessions as compare.py --shield does;
it sets the harness's own session too (wrk runs in it), so run it in a session of its own:
    setsid -w python3 perf-reports/busy-node/2026-12-07/ab/ab.py --autogroup-nice -20 --reps 9 \
        --arm base=forwarder/bin/Release/net10.0/forwarder --arm slice=forwarder/bin/Release/net10.0/forwarder@0,100000,splicer
"""
import sys, os, json, time, statistics, argparse, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "bench" / "l4"))
import compare as c

def schedstat(pid):
    run = wait = slices = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            a, b, c_ = map(int, open(f"/proc/{pid}/task/{t}/schedstat").read().split())
        except OSError:
            continue
        run += a; wait += b; slices += c_
    return run, wait, slices

def sysstat():
    f = open("/proc/stat").readline().split()[1:]
    v = list(map(int, f)); return sum(v), v[3] + v[4]

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--duration", type=int, default=5)
ap.add_argument("--conns", type=int, default=32)
ap.add_argument("--arm", action="append", default=[], help="name=binary[:ENV=V,ENV=V]")
ap.add_argument("--no-haproxy", action="store_true")
ap.add_argument("--autogroup-nice", type=int, default=None)
ap.add_argument("--out", default="/tmp/busy2/ab.json")
a = ap.parse_args()
c.raise_fd_limit()
tools = c.find_tools()
work = Path(tempfile.mkdtemp(prefix="ab-"))
ports = c.free_ports(2 + 2 * len(a.arm))
nginx_port, hap_port = ports[0], ports[1]
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
arms = []
tweaks = {}
import schedattr as sc
if not a.no_haproxy:
    h = c.Service("haproxy", [tools["haproxy"], "-f", str(work / "haproxy.cfg")], work / "haproxy.log", lambda: c.tcp_accepts(hap_port), None)
    services.append(h); arms.append(("haproxy", hap_port, h))
for i, spec in enumerate(a.arm):
    name, rest = spec.split("=", 1)
    rest, _, tweak = rest.partition("@")
    rest, _, threads = rest.partition("#")
    binary, _, envs = rest.partition(":")
    if tweak: tweaks[name] = tweak
    port, admin = ports[2 + 2 * i], ports[3 + 2 * i]
    cfg = work / f"{name}.yaml"
    tcp = f"tcp: {{ ioThreads: {threads} }}\n" if threads else ""
    cfg.write_text(tcp + f"""admin: {{ listen: 127.0.0.1:{admin} }}
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
    env = dict(e.split("=", 1) for e in envs.split(",") if e)
    argv = ["env", *[f"{k}={v}" for k, v in env.items()], binary, "--config", str(cfg), "--log-level", "Warning"]
    s = c.Service(name, argv, work / f"{name}.log", (lambda port=port: c.tcp_accepts(port)), None)
    services.append(s); arms.append((name, port, s))
def shield(pid):
    if a.autogroup_nice is not None:
        open(f"/proc/{pid}/autogroup", "w").write(str(a.autogroup_nice))
shield(os.getpid())
for s in services:
    s.start()
    shield(s.pid)
    if s.name in tweaks:
        nice, slice_ns, prefix = tweaks[s.name].split(",")
        pid = s.pid
        # env wrapper execs, so pid is the forwarder
        for tid in sc.threads(pid, prefix):
            sc.set_attr(tid, int(nice), int(slice_ns))
            print("tweaked", s.name, tid, sc.get_attr(tid))
time.sleep(1)
samples = []
try:
    for rep in range(a.reps):
        order = arms[rep % len(arms):] + arms[:rep % len(arms)]
        for name, port, svc in order:
            load = open("/proc/loadavg").read().split()[0]
            t0, i0 = sysstat()
            s0 = schedstat(svc.pid)
            r = c.measured(svc, lambda: c.run_wrk(tools["wrk"], port, a.conns, a.duration, None))
            t1, i1 = sysstat()
            s1 = schedstat(svc.pid)
            r.update(wait_us_per_req=(s1[1]-s0[1])/1e3/r["requests"], slices_per_req=(s1[2]-s0[2])/r["requests"], wait_pct=(s1[1]-s0[1])/1e7/a.duration)
            c.add_cpu_efficiency(r)
            r.update(arm=name, rep=rep, load=float(load), idle_pct=100.0 * (i1 - i0) / (t1 - t0))
            samples.append(r)
            print(f"rep {rep} {name:<12} {r['rps']:>9,.0f} p50 {r['p50_us']:>6.0f} p90 {r['p90_us']:>6.0f} p99 {r['p99_us']:>6.0f}  cpu {r['proxy_cpu_pct']:.0f}% {r['proxy_cpu_us_per_req']:.1f}us/req  idle {r['idle_pct']:.0f}% runq {r['wait_us_per_req']:.1f}us/req ({r['wait_pct']:.0f}%) sw/req {r['slices_per_req']:.2f} load {load}", flush=True)
finally:
    for s in reversed(services):
        s.stop()
names = [n for n, _, _ in arms]
print("\nmedians:")
for n in names:
    ss = [s for s in samples if s["arm"] == n]
    med = lambda k: statistics.median(s[k] for s in ss)
    print(f"  {n:<12} rps {med('rps'):>9,.0f} p50 {med('p50_us'):.0f} p90 {med('p90_us'):.0f} p99 {med('p99_us'):.0f} cpu/req {med('proxy_cpu_us_per_req'):.1f} runq/req {med('wait_us_per_req'):.1f} sw/req {med('slices_per_req'):.2f} idle {med('idle_pct'):.0f}%")
if "haproxy" in names:
    for n in names:
        if n == "haproxy": continue
        rr = [next(s for s in samples if s["arm"] == n and s["rep"] == r)["rps"] / next(s for s in samples if s["arm"] == "haproxy" and s["rep"] == r)["rps"] for r in range(a.reps)]
        print(f"  {n}/haproxy rep by rep: {' '.join(f'{x:.2f}' for x in rr)}  median {statistics.median(rr):.3f}")
json.dump(samples, open(a.out, "w"), indent=1)
