#!/bin/bash
# usage: [ARMS="name:port ..."] tun-link6.sh reps — tun-link5.sh's method: interleaved arms, each repetition iperf3 -n 1G with
# 1 and 100 streams (Gbit/s, the forwarders' CPU ms per GB from /proc/PID/stat), then wrk 4 s with 1 and 100 connections.
# Arms, each its own processes under /tmp/lp/run (JIT Release builds, tcp.ioThreads 1, ports shifted per arm):
#   plain (one splicing forwarder, main); link (node A -> TLS+yamux -> node B, main: base/);
#   link-new, link-new2, link-new3 (the variants measured on 2026-12-07 evening: new/, new2/, new3/);
#   link-bs, link-new3-bs (main and new3 with tcp.blockSize 256KiB on node A: base-bs/, new3-bs/);
#   relay-spliced (edge-c through a relay in splice mode to new/'s node B), relay-spliced-main (the same on main: base/c.yaml,
#   base/relay.yaml, to base/'s node B). Each directory holds a.yaml, b.yaml (c.yaml, relay.yaml) and their NAME.pid.
cd /tmp/lp/run
ticks() { local t=0 u s; for p in "$@"; do read u s < <(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f12,13); t=$((t+u+s)); done; echo $t; }
pids() { case $1 in plain) cat plain.pid;; link) echo "$(cat base/a.pid) $(cat base/b.pid)";; link-new) echo "$(cat new/a.pid) $(cat new/b.pid)";; link-new2) echo "$(cat new2/a.pid) $(cat new2/b.pid)";; link-new3) echo "$(cat new3/a.pid) $(cat new3/b.pid)";; link-bs) echo "$(cat base-bs/a.pid) $(cat base-bs/b.pid)";; link-new3-bs) echo "$(cat new3-bs/a.pid) $(cat new3-bs/b.pid)";; relay-spliced) echo "$(cat new/c.pid) $(cat new/relay.pid) $(cat new/b.pid)";; relay-spliced-main) echo "$(cat base/c.pid) $(cat base/relay.pid) $(cat base/b.pid)";; esac; }
ARMS=${ARMS:-"plain:19400 link:19300 link-new:19320 relay-spliced:19340"}
for rep in $(seq 1 $1); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  for p in 1 100; do
    for arm in $ARMS; do
      IFS=: read name port <<< "$arm"; port=$((port+1)); ps=$(pids $name)
      before=(); for x in $ps; do before+=($(ticks $x)); done
      out=$(iperf3 -c 127.0.0.1 -p $port -n 1G -P $p -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); e=d['end']['sum_received']; print(round(e['bits_per_second']/1e9,2), e['bytes'])" 2>/dev/null)
      read g bytes <<< "$out"; i=0; per=""; tot=0
      if [ -n "$bytes" ]; then
        for x in $ps; do d=$(( $(ticks $x) - before[i] )); tot=$((tot+d)); per="$per $(/usr/bin/python3 -c "print(round($d*10/($bytes/1e9)))")"; i=$((i+1)); done
        echo "iperf-P$p $name ${g}Gbit/s cpu-ms/GB $(/usr/bin/python3 -c "print(round($tot*10/($bytes/1e9)))") (per process:$per)"
      else echo "iperf-P$p $name no-result"; fi
      sleep 1
    done
  done
  for c in 1 100; do
    for arm in $ARMS; do
      IFS=: read name port <<< "$arm"
      r=$(wrk -t1 -c$c -d4s --latency http://127.0.0.1:$port/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}')
      echo "c$c $name $r"
    done
  done
done
