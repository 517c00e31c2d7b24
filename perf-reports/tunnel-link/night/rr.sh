#!/bin/bash
# usage: rr.sh reps arm:port... — wrk -t1 -c1 -d4s against nginx's 12-byte hello through each arm's web listener (PORT),
# arms interleaved (order reversed every other repetition); prints req/s, p50 and p99 per arm.
reps=$1; shift; arms=("$@"); rev=(); for ((k=${#arms[@]}-1; k>=0; k--)); do rev+=("${arms[k]}"); done
for i in $(seq 1 $reps); do
  if [ $((i % 2)) = 1 ]; then order=("${arms[@]}"); else order=("${rev[@]}"); fi
  for a in "${order[@]}"; do IFS=: read name port <<< "$a"
    echo "c1 $name $(wrk -t1 -c1 -d4s --latency http://127.0.0.1:$port/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}') load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
