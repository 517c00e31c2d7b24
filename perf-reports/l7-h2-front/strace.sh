#!/bin/bash
# usage: strace.sh FW_DIR WORKLOAD(get|grpc) N -> syscalls of the forwarder over one h2load run
set -u
dir=$1; w=$2; n=$3; here=$(cd "$(dirname "$0")" && pwd)
pids=(); cleanup() { for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; }; trap cleanup EXIT
waitport() { local i; for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; exit 1; }
/tmp/h2/be/out/be /tmp/h2/cert.pem /tmp/h2/key.pem & pids+=($!)
sed -e "s/18020/18170/; s/18030/18171/" $here/fw.yaml > /tmp/h2/fws.yaml
$dir/forwarder -c /tmp/h2/fws.yaml --log-level Warning & fw=$!; pids+=($fw)
waitport 18090; waitport 18170
printf '\x00\x00\x00\x00\x07\x0a\x05hello' > /tmp/h2/grpc-req.bin
load() { case $w in
  get) h2load -c32 -m10 -t1 -n $1 http://127.0.0.1:18170/hello ;;
  grpc) h2load -c32 -m10 -t1 -n $1 -d /tmp/h2/grpc-req.bin -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:18170/echo.Echo/Unary ;;
esac 2>&1 | grep -E "finished in|status codes"; }
load 20000 >/dev/null
strace -c -f -p $fw -o /tmp/h2/strace.out & sp=$!; sleep 2
load $n
kill -INT $sp; wait $sp
awk -v n=$n 'NR<=2 || /sendto|recvfrom|epoll|futex|write|read|total/ {print} /sendto|recvfrom|total/ {printf "   -> %s per request: %.3f\n", $NF, $4/n}' /tmp/h2/strace.out
