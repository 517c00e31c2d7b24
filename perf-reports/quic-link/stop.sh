#!/bin/bash
# Ends what setup.sh started, by pid.
run=/tmp/quic-link-bench
while read name pid; do kill $pid 2>/dev/null; done < $run/pids
kill $(cat $run/nginx.pid) $(cat $run/iperf3.pid) 2>/dev/null
