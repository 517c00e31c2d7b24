#!/bin/bash
# usage: grpc.sh reps ; arms interleaved; prints rps and proxy CPU per request
reps=$1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for rep in $(seq 1 $reps); do
  for arm in direct:18090:$BEPID forwarder:18020:$FWPID nginx:18021:$NGPID haproxy:18022:$HAPID; do
    IFS=: read name port pid <<< "$arm"
    c0=$(cpu $pid)
    out=$(h2load -c32 -m10 -n 100000 -t1 -d /tmp/l7/grpc-req.bin -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:$port/echo.Echo/Unary 2>&1)
    c1=$(cpu $pid)
    rps=$(echo "$out" | awk '/finished in/{print $4}' | tr -d ,)
    ok=$(echo "$out" | awk '/status codes:/{print $3}')
    echo "$name rps=$rps 2xx=$ok cpu_us_per_req=$(echo "($c1-$c0)*10000/100000" | bc -l | xargs printf %.1f) $(echo "$out" | grep 'time for request')"
  done
done
