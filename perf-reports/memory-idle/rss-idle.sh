#!/bin/bash
# rss-idle.sh: run from a work directory holding idle-series.sh, a.yaml, b.yaml, certs/ and l4.yaml (idle-l4.yaml here: idle_conns.py's config with fixed ports).
# Idle RSS, NativeAOT, main vs mem2 interleaved, 3 reps: the link config (nodes A and B) at +5/+35/+65 s after the start-up
# release, and the plain L4 config (idle_conns.py's) at +5 s. Under the bench lock.
cd /tmp/mem2-work
exec 9>/tmp/bench.lock; flock 9
echo "== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in 1 2 3; do
  for arm in main:/tmp/mem2-main-aot/forwarder fin:/tmp/mem2-fin-aot/forwarder; do
    n=${arm%%:*}; bin=${arm#*:}
    ./idle-series.sh $bin $n-$rep
    $bin --config l4.yaml > l4-$n.log 2>&1 & p=$!
    for i in $(seq 100); do grep -q "Start-up memory released" l4-$n.log && break; sleep 0.2; done; sleep 5
    echo "$n-$rep l4 +5s: $(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$p/status) threads $(ls /proc/$p/task | wc -l)"
    cp /proc/$p/smaps l4-$n-$rep.smaps; kill $p; wait $p 2>/dev/null
  done
done
echo "== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
flock -u 9
