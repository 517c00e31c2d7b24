#!/bin/bash
# usage: tun-link3.sh reps — as tun-zc.sh (interleaved: direct, plain, link and relay of the base build and of the new one)
# link before (19300/19301), link new (19320/19321), relay before (19310/19311), relay new (19330/19331)
for rep in $(seq 1 $1); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  for c in 1 100; do
    for arm in direct:18080 plain:19400 link-before:19300 link-new:19320 relay-before:19310 relay-new:19330; do
      IFS=: read name port <<< "$arm"
      r=$(wrk -t1 -c$c -d5s --latency http://127.0.0.1:$port/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}')
      echo "c$c $name $r"
    done
  done
  for p in 1 100; do
    for arm in direct:19500 plain:19401 link-before:19301 link-new:19321 relay-before:19311 relay-new:19331; do
      IFS=: read name port <<< "$arm"
      g=$(iperf3 -c 127.0.0.1 -p $port -t 4 -P $p -J 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['end']['sum_received']['bits_per_second']/1e9,2))" 2>/dev/null)
      echo "iperf-P$p $name ${g}Gbit/s"
      sleep 1
    done
  done
done
