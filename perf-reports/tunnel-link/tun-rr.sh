#!/bin/bash
# usage: tun-rr.sh reps [connections...] — request/response only (default 1 and 100 connections),
# link before (19300) and link new (19320) alternated ABBA so drift in the machine's load falls on both
reps=$1; shift; conns=${@:-1 100}
w() { wrk -t1 -c$1 -d4s --latency http://127.0.0.1:$2/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}'; }
for rep in $(seq 1 $reps); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ $((rep % 2)) = 1 ]; then order="link-before:19300 link-new:19320"; else order="link-new:19320 link-before:19300"; fi
  for c in $conns; do for arm in $order; do IFS=: read name port <<< "$arm"; echo "c$c $name $(w $c $port)"; done; done
done
