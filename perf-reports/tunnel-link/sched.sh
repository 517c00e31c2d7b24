#!/bin/bash
# usage: sched.sh secs pid... -- per process: CPU time, run-queue wait (runnable, not running) and the rest (asleep) over secs, from schedstat, summed over threads; and the busiest thread's
T=$1; shift
declare -A r0 w0
for p in "$@"; do for t in /proc/$p/task/*; do read a b c < $t/schedstat; r0[$t]=$a; w0[$t]=$b; done; done
sleep $T
for p in "$@"; do
  tr=0; tw=0; best=""; bestr=0
  for t in /proc/$p/task/*; do read a b c < $t/schedstat; dr=$(( (a - ${r0[$t]:-0})/1000000 )); dw=$(( (b - ${w0[$t]:-0})/1000000 )); tr=$((tr+dr)); tw=$((tw+dw)); if [ $dr -gt $bestr ]; then bestr=$dr; best="$(cat $t/comm) run ${dr}ms wait ${dw}ms"; fi; done
  echo "$(cat /proc/$p/comm)[$p] over ${T}s: on-cpu ${tr}ms runqueue-wait ${tw}ms; busiest thread: $best"
done
