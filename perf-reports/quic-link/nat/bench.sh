#!/bin/bash
# usage: bench.sh reps — relay vs punched across the NAT lab, interleaved within each repetition.
# Request/response: wrk -t1 -d5s against nginx's 12-byte hello, 1 and 100 connections. Bulk:
# iperf3 -t 4, 1 and 100 streams, with the CPU seconds of every forwarder on the arm's path per GB.
run=/tmp/quic-nat-bench
declare -A path=( [relay]="a-relay relay b" [punched]="a-punch b" )
declare -A web=( [relay]=36310 [punched]=36330 )
cpu() { # CPU ticks (user + system) of the named processes
  local total=0
  for name in $1; do
    pid=$(awk -v n=$name '$1 == n { print $2 }' $run/pids)
    for p in $pid $(pgrep -P $pid); do total=$((total + $(awk '{ print $14 + $15 }' /proc/$p/stat))); done
  done
  echo $total
}
hz=$(getconf CLK_TCK)
for rep in $(seq 1 $1); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  for c in 1 100; do
    for arm in relay punched; do
      r=$(ip netns exec quicna wrk -t1 -c$c -d5s --latency http://127.0.0.1:${web[$arm]}/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}')
      echo "c$c $arm $r"
    done
  done
  for p in 1 100; do
    for arm in relay punched; do
      before=$(cpu "${path[$arm]}")
      read bytes bps <<< $(ip netns exec quicna iperf3 -c 127.0.0.1 -p $((${web[$arm]} + 1)) -t 4 -P $p -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin)['end']['sum_received']; print(int(s['bytes']), s['bits_per_second'])" 2>/dev/null)
      after=$(cpu "${path[$arm]}")
      echo "iperf-P$p $arm $(/usr/bin/python3 -c "b=${bytes:-0}; print(round(${bps:-0}/1e9,2), 'Gbit/s', round(($after-$before)/$hz/(b/1e9),2) if b else '-', 'cpu-s/GB')")"
      sleep 1
    done
  done
done
