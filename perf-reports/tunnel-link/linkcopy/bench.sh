#!/bin/bash
# linkcopy: plain vs main vs branch (frames written in place), abab.sh (ABC/CBA), 1 and 100 streams.
# Builds: main at 5b080e7 in /tmp/lc-main, the branch in /tmp/lc-branch (JIT Release, `dotnet build -c Release`).
T=$(dirname "$(readlink -f "$0")")
cd /tmp/lc/run
nohup iperf3 -s -p 19700 > iperf.log 2>&1 & echo $! > iperf.pid
nohup /tmp/lc/bin/main/forwarder --config plain.yaml --log-level Warning > plain.log 2>&1 & echo $! > plain.pid
$T/arm.sh main main 21620
$T/arm.sh branch branch 21920
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/19450) 2>/dev/null && break; sleep 0.2; done
# warm-up (JIT tiers), outside the lock
for a in 19451 21621 21921; do iperf3 -c 127.0.0.1 -p $a -n 1G > /dev/null 2>&1; done
exec 9>/tmp/bench.lock; flock 9
echo "== $(date -u) main 5b080e7 (main) vs branch (branch), load $(cut -d' ' -f1 /proc/loadavg)"
$T/abab.sh ${REPS:-5} 1 plain:19450 main:21620 branch:21920
$T/abab.sh ${REPS:-5} 100 plain:19450 main:21620 branch:21920
exec 9>&-
kill $(cat main/a.pid) $(cat main/b.pid) $(cat branch/a.pid) $(cat branch/b.pid) $(cat plain.pid) $(cat iperf.pid)
