#!/bin/bash
# usage: abab-link6.sh pairs streams armA:port armB:port — alternates two arms (ABBA order) of tun-link6.sh, one iperf3 -n 1G
# each, and prints Gbit/s and the forwarders' CPU ms per GB of each, to resolve differences smaller than the run's swings.
cd /tmp/lp/run
ticks() { local t=0 u s; for p in "$@"; do read u s < <(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f12,13); t=$((t+u+s)); done; echo $t; }
pids() { case $1 in link) echo "$(cat base/a.pid) $(cat base/b.pid)";; link-new3) echo "$(cat new3/a.pid) $(cat new3/b.pid)";; link-bs) echo "$(cat base-bs/a.pid) $(cat base-bs/b.pid)";; link-new3-bs) echo "$(cat new3-bs/a.pid) $(cat new3-bs/b.pid)";; link-new2) echo "$(cat new2/a.pid) $(cat new2/b.pid)";; relay-spliced-main) echo "$(cat base/c.pid) $(cat base/relay.pid) $(cat base/b.pid)";; esac; }
one() { IFS=: read name port <<< "$1"; ps=$(pids $name); t0=$(ticks $ps)
  out=$(iperf3 -c 127.0.0.1 -p $((port+1)) -n 1G -P $2 -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); e=d['end']['sum_received']; print(round(e['bits_per_second']/1e9,2), e['bytes'])" 2>/dev/null)
  read g bytes <<< "$out"; d=$(( $(ticks $ps) - t0 ))
  echo "$name ${g} $(/usr/bin/python3 -c "print(round($d*10/($bytes/1e9)))")"; }
for i in $(seq 1 $1); do
  if [ $((i % 2)) = 1 ]; then one $3 $2; one $4 $2; else one $4 $2; one $3 $2; fi
done
