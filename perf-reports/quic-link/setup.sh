#!/bin/bash
# usage: setup.sh FORWARDER_DLL — starts the backends (nginx on 36080, iperf3 on 36500), the plain
# forwarder, node B, the relay and the four node A's (tcp link, quic link, relay, punched), each its
# own process; pids in /tmp/quic-link-bench/pids (name pid). stop.sh ends them.
set -e
dll=$(realpath "$1"); here=$(dirname "$(realpath "$0")"); run=/tmp/quic-link-bench
mkdir -p $run && cd $run
[ -d certs ] || { dotnet "$dll" cert --out certs edge-a edge-b edge-c >/dev/null; dotnet "$dll" cert --out certs --relay relay-1 >/dev/null; }
cp "$here"/*.yaml .
nginx -c "$here/nginx.conf"
iperf3 -s -p 36500 -D --pidfile $run/iperf3.pid
: > pids
start() { dotnet "$dll" $2 --config $1.yaml > $1.log 2>&1 & echo "$1 $!" >> pids; }
start relay relay; sleep 2
start b; start plain; sleep 3
for a in a-tcp a-quic a-relay a-punch; do start $a; done
sleep 5
# Warm every arm once: links up (the punched one through the relay's introduction) and JIT warm.
for port in 36400 36300 36320 36310 36330; do
  for i in $(seq 1 30); do curl -sf -o /dev/null http://127.0.0.1:$port/ && break; [ $i = 30 ] && { echo "port $port does not answer"; exit 1; }; sleep 1; done
  wrk -t1 -c10 -d2s http://127.0.0.1:$port/ > /dev/null
done
