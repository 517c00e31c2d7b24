#!/bin/bash
# usage: tun-link4.sh reps — interleaved arms: direct, plain, link and relay of the base build and of the new one
# nginx 28080, iperf3 29500; plain 29400/29401; link base 29300/29301, link new 29320/29321; relay base 29310/29311, relay new 29330/29331
for rep in $(seq 1 $1); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  for c in 1 100; do
    for arm in direct:28080 plain:29400 link-base:29300 link-new:29320 relay-base:29310 relay-new:29330; do
      IFS=: read name port <<< "$arm"
      r=$(wrk -t1 -c$c -d5s --latency http://127.0.0.1:$port/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}')
      echo "c$c $name $r"
    done
  done
  for p in 1 100; do
    for arm in direct:29500 plain:29401 link-base:29301 link-new:29321 relay-base:29311 relay-new:29331; do
      IFS=: read name port <<< "$arm"
      g=$(iperf3 -c 127.0.0.1 -p $port -t 4 -P $p -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['end']['sum_received']['bits_per_second']/1e9,2))" 2>/dev/null)
      echo "iperf-P$p $name ${g}Gbit/s"
      sleep 1
    done
  done
done
