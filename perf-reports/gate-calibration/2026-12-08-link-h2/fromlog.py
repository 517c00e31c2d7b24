#!/usr/bin/env python3
"""Rebuilds a calibration samples.json from its console log, when the run stopped before writing it.
Figures are as printed (throughput to 0.1k req/s, open p99 to 1 us). Usage: fromlog.py LOG OUT LOAD REQUEST_DELAY_US RECORDED_AT (the runs of 2026-12-08: link and h2 arms, 2 us per chunk)."""
import json, re, sys
log, out, load = sys.argv[1], sys.argv[2], sys.argv[3]
sessions = []
line_re = re.compile(r"^  rep (\d+) (base|same|slowed): (.*)$")
arm_re = re.compile(r"^(\S+) p50 ([\d.]+)us p99 ([\d.]+)us ([\d.]+)k req/s open p99 (\d+)us(?: rss ([\d.]+)MiB)?$")
for line in open(log):
    line = line.rstrip("\n")
    if re.match(r"^session \d+/\d+", line):
        sessions.append({"base": [], "same": [], "slowed": []})
        continue
    m = line_re.match(line)
    if not m:
        continue
    rep, build = int(m.group(1)), m.group(2)
    for part in m.group(3).split(" | "):
        a = arm_re.match(part.strip())
        assert a, part
        s = {"arm": a.group(1), "rep": rep, "p50Us": float(a.group(2)), "p99Us": float(a.group(3)), "maxRps": float(a.group(4)) * 1000, "openP99Us": float(a.group(5))}
        if a.group(6):
            s["rssMiB"] = float(a.group(6))
        sessions[-1][build].append(s)
# keep only reps every build completed
for s in sessions:
    reps = set(x["rep"] for x in s["base"]) & set(x["rep"] for x in s["same"]) & set(x["rep"] for x in s["slowed"])
    for b in s:
        s[b] = [x for x in s[b] if x["rep"] in reps]
sessions = [s for s in sessions if s["base"]]
doc = {"recordedAt": sys.argv[5], "load": load, "machine": "1 cores (AMD EPYC), Debian GNU/Linux 12 (bookworm)",
       "chunkDelayUs": 2, "requestDelayUs": float(sys.argv[4]),
       "settings": {"connections": 1, "durationSeconds": 1, "slices": 10, "maxConnections": 32, "maxDurationSeconds": 0.5, "warmupSeconds": 0.25, "warmupReps": 2, "backend": "nginx", "openRate": 2000, "openDurationSeconds": 1, "arms": ["forwarder-link", "forwarder-h2"]},
       "sessions": sessions}
json.dump(doc, open(out, "w"), indent=2)
print(out, [len(set(x["rep"] for x in s["base"])) for s in sessions], "reps per session")
