#!/usr/bin/env python3
# usage: ratios.py RUNS_FILE -> per workload: median rps and CPU per request of each arm, and the paired ratios
# rep by rep (each fwN / hap1, fw1 / fw0) with their medians. Lines "# run ..." start a new run (its reps pair apart).
import sys, re, statistics as st
rows = {}
run = 0
for line in open(sys.argv[1]):
    if line.startswith('# run'): run += 1
    m = re.match(r'(get|grpc|tls) (\S+) rep=(\d+) rps=(\S+) 2xx=\S+ cpu_us_per_req=(\S+)', line)
    if not m: continue
    w, a, rep, rps, cpu = m.group(1), m.group(2), int(m.group(3)), float(m.group(4)), float(m.group(5))
    rows.setdefault(w, {}).setdefault((run, rep), {})[a] = (rps, cpu)
for w, reps in rows.items():
    arms = sorted({a for r in reps.values() for a in r})
    print(w)
    for a in arms:
        print('  %-5s median rps %.0f  cpu %.1f us' % (a, st.median(r[a][0] for r in reps.values() if a in r), st.median(r[a][1] for r in reps.values() if a in r)))
    for a in [x for x in arms if x.startswith('fw')]:
        cr = [r[a][1] / r['hap1'][1] for r in reps.values()]; rr = [r[a][0] / r['hap1'][0] for r in reps.values()]
        print('  %s/hap1 per rep: cpu %s (median %.2f)  rps %s (median %.2f)' % (a, ' '.join('%.2f' % x for x in cr), st.median(cr), ' '.join('%.2f' % x for x in rr), st.median(rr)))
    if 'fw0' in arms and 'fw1' in arms:
        cr = [r['fw1'][1] / r['fw0'][1] for r in reps.values()]; rr = [r['fw1'][0] / r['fw0'][0] for r in reps.values()]
        print('  fw1/fw0 per rep: cpu %s (median %.2f)  rps %s (median %.2f)' % (' '.join('%.2f' % x for x in cr), st.median(cr), ' '.join('%.2f' % x for x in rr), st.median(rr)))
