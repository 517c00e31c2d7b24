#!/bin/bash
# usage: cpu-link4.sh reps — CPU the forwarders spend per GB of iperf3 (-n 1 GiB, 1 and 100 streams) and per 1000 requests
# (wrk 5 s, 1 and 100 connections), with throughput and p50, for plain and for the link and relay arms of three builds
# (base, new = direct sends, new2 = new + waitForData skipped after a full receive), interleaved.
# Ticks: utime+stime from /proc/PID/stat (1/100 s), summed over the arm's forwarders (A [relay] B).
# Set-up: /tmp/link4/run holds plain.yaml and one folder per build (base, new, new2), each with a.yaml, b.yaml,
# relay.yaml and a-relay.yaml (those of this folder with ports shifted: nginx 28080, iperf3 29500, plain 29400,
# base +0, new +20, new2 +40 on 29200/29300/29310/29700) and the NAME.pid of each forwarder started from them.
cd /tmp/link4/run
ticks() { local t=0 u s; for p in "$@"; do read u s < <(cut -d' ' -f14,15 /proc/$p/stat); t=$((t+u+s)); done; echo $t; }
pids() { case $1 in plain) cat plain.pid;; link-*) echo "$(cat $2/a.pid) $(cat $2/b.pid)";; relay-*) echo "$(cat $2/a-relay.pid) $(cat $2/relay.pid) $(cat $2/b.pid)";; esac; }
ARMS="plain:29400:. link-base:29300:base link-new:29320:new link-new2:29340:new2 relay-base:29310:base relay-new:29330:new relay-new2:29350:new2"
for rep in $(seq 1 $1); do
  echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  for p in 1 100; do
    for arm in $ARMS; do
      IFS=: read name port dir <<< "$arm"; port=$((port+1)); ps=$(pids $name $dir)
      before=(); for x in $ps; do before+=($(ticks $x)); done
      out=$(iperf3 -c 127.0.0.1 -p $port -n 1G -P $p -J 2>/dev/null | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); e=d['end']['sum_received']; print(round(e['bits_per_second']/1e9,2), e['bytes'])" 2>/dev/null)
      read g bytes <<< "$out"; i=0; per=""; tot=0
      for x in $ps; do d=$(( $(ticks $x) - before[i] )); tot=$((tot+d)); per="$per $(/usr/bin/python3 -c "print(round($d*10/($bytes/1e9)))")"; i=$((i+1)); done
      echo "iperf-P$p $name ${g}Gbit/s cpu-ms/GB $(/usr/bin/python3 -c "print(round($tot*10/($bytes/1e9)))") (A [relay] B:$per)"
      sleep 1
    done
  done
  for c in 1 100; do
    for arm in $ARMS; do
      IFS=: read name port dir <<< "$arm"; ps=$(pids $name $dir)
      b=$(ticks $ps)
      r=$(wrk -t1 -c$c -d5s --latency http://127.0.0.1:$port/ | awk '/requests in/{n=$1} /Requests\/sec/{rps=$2} / 50%/{p50=$2} END{print n, rps, p50}')
      read n rps p50 <<< "$r"; a=$(ticks $ps)
      echo "c$c $name $rps req/s p50 $p50 cpu-ms/1000req $(/usr/bin/python3 -c "print(round(($a-$b)*10/($n/1000),1))")"
    done
  done
done
