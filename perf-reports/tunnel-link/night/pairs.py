#!/usr/bin/env python3
"""usage: pairs.py FILE A B [PLAIN] — per repetition of abab.sh's output (split at '==' headers and stream counts), the
ratio B/A of Gbit/s and of CPU ms per GB, and each arm / plain's Gbit/s; prints the medians and how many reps B won."""
import sys, statistics as st
f, a, b = sys.argv[1:4]; plain = sys.argv[4] if len(sys.argv) > 4 else None
blocks = {}
for line in open(f):
    p = line.split()
    if len(p) >= 3 and p[0].startswith('P') and p[0][1:].isdigit():
        blocks.setdefault(p[0], []).append((p[1], float(p[2]), float(p[3])) if p[2] != 'no-result' else (p[1], None, None))
for s, all_rows in blocks.items():
    rows = all_rows; arms = sorted({r[0] for r in rows}); n = len(arms)
    reps = [rows[i:i + n] for i in range(0, len(rows) - n + 1, n)]
    g, c, wins, pa, pb = [], [], 0, [], []
    for rep in reps:
        d = {r[0]: r for r in rep if r[1] is not None}
        if a in d and b in d:
            g.append(d[b][1] / d[a][1]); c.append(d[b][2] / d[a][2]); wins += d[b][2] < d[a][2]
            if plain and plain in d:
                pa.append(d[a][1] / d[plain][1]); pb.append(d[b][1] / d[plain][1])
    rows = [r for r in all_rows if r[1] is not None]
    med = lambda xs: round(st.median(xs), 3) if xs else None
    print(f"{s}: {b}/{a} Gbit/s median {med(g)} {[round(x, 2) for x in g]}; CPU/GB median {med(c)} {[round(x, 2) for x in c]}; "
          f"{b} cheaper in {wins}/{len(c)}; Gbit/s medians {a} {med([d[1] for d in rows if d[0] == a])} {b} {med([d[1] for d in rows if d[0] == b])}"
          + (f"; vs plain {a} {med(pa)} {b} {med(pb)}" if plain else "")
          + f"; CPU ms/GB medians {a} {med([d[2] for d in rows if d[0] == a])} {b} {med([d[2] for d in rows if d[0] == b])}")
