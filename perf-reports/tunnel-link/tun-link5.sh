#!/bin/bash
# usage: tun-link5.sh reps — interleaved arms, each repetition: iperf3 -n 1G with 1 and 100 streams (Gbit/s and the forwarders'
# CPU ms per GB, utime+stime from /proc/PID/stat), then wrk 4 s with 1 and 100 connections (req/s, p50, p99).
# Arms: plain (one splicing forwarder), link (node A -> TLS+yamux -> node B, main), link-w16 (16 MiB yamux window),
# link-q4 (window update after a quarter of it is consumed), link-spliced (the link's TCP connection through a
# splicing forwarder: what a relay that splices end-to-end TLS would cost), relay (main's relay: two TLS sessions).
# hap16, hap64: two haproxy 2.6 processes (nbthread 1) with mutually authenticated TLS 1.3 between them, one TLS connection
# per client connection, tune.bufsize 16 KiB (default) and 64 KiB (../hap): a C proxy paying for TLS at both ends.
# /tmp/link5/run holds plain.yaml, base/ w16/ q4/ sp/ with their yaml files and NAME.pid of each forwarder.
cd /tmp/link5/run
ticks() { local t=0 u s; for p in "$@"; do read u s < <(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f12,13); t=$((t+u+s)); done; echo $t; }
pids() { case $1 in plain) cat plain.pid;; link) echo "$(cat base/a.pid) $(cat base/b.pid)";; link-w16) echo "$(cat w16/a.pid) $(cat w16/b.pid)";; link-q4) echo "$(cat q4/a.pid) $(cat q4/b.pid)";; link-spliced) echo "$(cat sp/a.pid) $(cat sp/sr.pid) $(cat base/b.pid)";; relay) echo "$(cat base/a-relay.pid) $(cat base/relay.pid) $(cat base/b.pid)";; hap16) echo "$(cat ../hap/a.pid) $(cat ../hap/b.pid)";; hap64) echo "$(cat ../hap/a64.pid) $(cat ../hap/b64.pid)";; esac; }
ARMS=${ARMS:-"plain:29400 link:29300 link-w16:29340 link-q4:29360 link-spliced:29460 relay:29310"}
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
