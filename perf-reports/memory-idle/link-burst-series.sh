#!/bin/bash
# usage: link-burst-series.sh BASE_BIN NEW_BIN REPS — link-burst.sh on both binaries, interleaved, each run under the bench lock
exec 9>/tmp/bench.lock
for rep in $(seq 1 $3); do
  for arm in base:$1 new:$2; do
    IFS=: read name bin <<< "$arm"
    flock 9
    echo "rep $rep $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$(dirname "$0")/link-burst.sh" "$bin" "$name"
    grep -h "reclaimed" "$(dirname "$0")/link-burst-work/a.log" | sed 's/^/  A: /'
    flock -u 9
  done
done
