#!/bin/bash
# usage: cpugb.sh port label pids... -- one iperf3 -n 1G stream to port; prints Gbit/s, CPU ms per GB of each pid, of the iperf3 server and client, and context switches per MB of each pid
P=$1; L=$2; shift 2
S=$(pgrep -f "iperf3 -s -p 29500")
tk() { sed 's/.*) //' /proc/$1/stat | awk '{print $12+$13}'; }
cs() { awk '/ctxt_switches/{s+=$2} END{print s}' /proc/$1/task/*/status 2>/dev/null; }
declare -A t0 c0; for p in "$@" $S; do t0[$p]=$(tk $p); c0[$p]=$(cs $p); done
/usr/bin/time -f "%e %U %S" -o /tmp/link5/cli.time iperf3 -c 127.0.0.1 -p $P -n 1G -J > /tmp/link5/cpugb.json 2>/dev/null
read el cu cs_ < /tmp/link5/cli.time
out=$(/usr/bin/python3 -c "import json; d=json.load(open('/tmp/link5/cpugb.json')); e=d['end']['sum_received']; print(round(e['bits_per_second']/1e9,2), e['bytes'])")
read g bytes <<< "$out"; gb=$(/usr/bin/python3 -c "print($bytes/1e9)")
line="$L ${g}Gbit/s cpu-ms/GB:"; tot=0
for p in "$@" $S; do d=$(( $(tk $p) - t0[$p] )); tot=$((tot+d*10)); c=$(( $(cs $p) - c0[$p] )); line="$line $(cat /proc/$p/comm | cut -c1-6)[$p]=$(/usr/bin/python3 -c "print(round($d*10/$gb))")ms,$(/usr/bin/python3 -c "print(round($c/($gb*1000),1))")cs/MB"; done
cl=$(/usr/bin/python3 -c "print(round(($cu+$cs_)*1000))"); tot=$((tot+cl))
echo "$line client=$(/usr/bin/python3 -c "print(round($cl/$gb))")ms total=$(/usr/bin/python3 -c "print(round($tot/$gb))")ms/GB load $(cut -d' ' -f1 /proc/loadavg)"
