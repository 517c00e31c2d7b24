#!/bin/bash
# Ends what setup.sh started, by pid, and deletes the lab's namespaces (with their links and rules).
run=/tmp/quic-nat-bench
while read name pid; do kill $pid 2>/dev/null; done < $run/pids
kill $(cat $run/nginx.pid) $(cat $run/iperf3.pid) 2>/dev/null
sleep 2
for n in wan rly ra rb na nb; do ip netns del quic$n 2>/dev/null; done
