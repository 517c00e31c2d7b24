#!/bin/bash
# usage: tun-splice.sh reps — interleaved arms, each repetition: iperf3 -n 1G with 1 stream (Gbit/s and the forwarders'
# CPU ms per GB, utime+stime from /proc/PID/stat), then wrk 4 s with 1 connection (req/s, p50, p99).
# Arms: link (edge-a -> TLS+yamux -> edge-b, direct), relay-spliced (edge-c -> the relay's splice port -> edge-b, the
# same TLS+yamux link end to end, the relay splicing TCP), relay-terminating (edge-d, node.relayMode: terminate ->
# TLS+yamux to the relay -> TLS+yamux to edge-b). One relay process (relay.mode: splice) serves both relay arms.
cd "${RUN_DIR:-/tmp/relaysplice}"
ticks() { local t=0 u s; for p in "$@"; do read u s < <(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f12,13); t=$((t+u+s)); done; echo $t; }
pids() { case $1 in link) echo "$(cat a-link.pid) $(cat b.pid)";; relay-spliced) echo "$(cat a-sp.pid) $(cat relay.pid) $(cat b.pid)";; relay-terminating) echo "$(cat a-term.pid) $(cat relay.pid) $(cat b.pid)";; esac; }
ARMS=${ARMS:-"link:23310 relay-spliced:23320 relay-terminating:23330"}
for rep in $(seq 1 $1); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  for arm in $ARMS; do
    IFS=: read name port <<< "$arm"; port=$((port+1)); ps=$(pids $name)
    before=(); for x in $ps; do before+=($(ticks $x)); done
    out=$(iperf3 -c 127.0.0.1 -p $port -n 1G -P 1 -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); e=d['end']['sum_received']; print(round(e['bits_per_second']/1e9,2), e['bytes'])" 2>/dev/null)
    read g bytes <<< "$out"; i=0; per=""; tot=0
    if [ -n "$bytes" ]; then
      for x in $ps; do d=$(( $(ticks $x) - before[i] )); tot=$((tot+d)); per="$per $(/usr/bin/python3 -c "print(round($d*10/($bytes/1e9)))")"; i=$((i+1)); done
      echo "iperf-P1 $name ${g}Gbit/s cpu-ms/GB $(/usr/bin/python3 -c "print(round($tot*10/($bytes/1e9)))") (per process:$per)"
    else echo "iperf-P1 $name no-result"; fi
  done
  for arm in $ARMS; do
    IFS=: read name port <<< "$arm"
    r=$(wrk -t1 -c1 -d4s --latency http://127.0.0.1:$port/ | awk '/Requests\/sec/{rps=$2} / 50%/{p50=$2} / 99%/{p99=$2} END{print rps, p50, p99}')
    echo "c1 $name $r"
  done
done
