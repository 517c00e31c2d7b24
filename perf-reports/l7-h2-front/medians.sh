#!/bin/bash
# usage: medians.sh RUNS_FILE -> per workload and arm: median rps, median CPU per request, median RSS
grep -E '^(get|grpc|tls) ' "$1" | awk '{split($4,r,"=");split($6,c,"=");split($7,m,"="); k=$1" "$2; rps[k]=rps[k]" "r[2]; cpu[k]=cpu[k]" "c[2]; rss[k]=rss[k]" "m[2]} END{for(k in rps) print k, rps[k], "|", cpu[k], "|", rss[k]}' |
while read w a rest; do
  med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
  r=$(echo "$rest" | cut -d'|' -f1 | med); c=$(echo "$rest" | cut -d'|' -f2 | med); m=$(echo "$rest" | cut -d'|' -f3 | med)
  echo "$w $a rps=$r cpu_us=$c rss_mb=$m"
done | sort
