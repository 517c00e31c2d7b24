#!/bin/bash
# linkframe: plain vs main vs branch, abab.sh (ABC/CBA), 1 and 100 streams
cd /tmp/lp/run
T=/work/wt-linkframe/perf-reports/tunnel-link
nohup iperf3 -s -p 19500 > iperf.log 2>&1 & echo $! > iperf.pid
nohup /tmp/lp/bin/lfmain/forwarder --config plain.yaml --log-level Warning > plain.log 2>&1 & echo $! > plain.pid
$T/night/arm.sh lfmain lfmain 19620
$T/night/arm.sh lfbranch lfbranch 19920
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/19400) 2>/dev/null && break; sleep 0.2; done
exec 9>/tmp/bench.lock; flock 9
echo "== $(date -u) main e4bd01a (lfmain) vs branch (lfbranch), load $(cut -d' ' -f1 /proc/loadavg)"
$T/night/abab.sh ${REPS:-6} 1 plain:19400 lfmain:19620 lfbranch:19920
$T/night/abab.sh ${REPS:-6} 100 plain:19400 lfmain:19620 lfbranch:19920
exec 9>&-
kill $(cat lfmain/a.pid) $(cat lfmain/b.pid) $(cat lfbranch/a.pid) $(cat lfbranch/b.pid) $(cat plain.pid) $(cat iperf.pid)
