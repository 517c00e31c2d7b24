#!/bin/bash
# usage: abab.sh pairs streams armA:port armB:port [armC:port] — abab-link6.sh's method with arms named by their directory
# under /tmp/lc/run (started by arm.sh; "plain" is the one splicing forwarder, plain.pid): the arms alternate ABBA (with a
# third arm, ABC then CBA), one iperf3 -n 1G each; prints Gbit/s and the forwarders' CPU ms per GB (node A + node B).
cd /tmp/lc/run
ticks() { local t=0 u s; for p in "$@"; do read u s < <(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f12,13); t=$((t+u+s)); done; echo $t; }
pids() { if [ $1 = plain ]; then cat plain.pid; else echo "$(cat $1/a.pid) $(cat $1/b.pid)"; fi; }
one() { IFS=: read name port <<< "$1"; ps=$(pids $name); t0=$(ticks $ps)
  out=$(iperf3 -c 127.0.0.1 -p $((port+1)) -n 1G -P $2 -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); e=d['end']['sum_received']; print(round(e['bits_per_second']/1e9,2), e['bytes'])" 2>/dev/null)
  read g bytes <<< "$out"; d=$(( $(ticks $ps) - t0 ))
  if [ -n "$bytes" ]; then echo "P$2 $name ${g} $(/usr/bin/python3 -c "print(round($d*10/($bytes/1e9)))") load $(cut -d' ' -f1 /proc/loadavg)"; else echo "P$2 $name no-result"; fi; }
P=$1; S=$2; shift 2; arms=("$@"); rev=(); for ((k=${#arms[@]}-1; k>=0; k--)); do rev+=("${arms[k]}"); done
for i in $(seq 1 $P); do
  if [ $((i % 2)) = 1 ]; then order=("${arms[@]}"); else order=("${rev[@]}"); fi
  for a in "${order[@]}"; do one $a $S; done
done
