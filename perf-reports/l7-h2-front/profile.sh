#!/bin/bash
# usage: profile.sh FW_DIR WORKLOAD(get|grpc) OUT_PREFIX
# One forwarder (with the admin endpoint) and the backend; after a warm-up, one h2load run of
# 100k requests: allocated bytes, GCs and context switches per request from /metrics and /proc;
# then `perf record -g` over a second run (DOTNET_PerfMapEnabled=1 for JIT frames).
# Take the lock first: exec 9>/tmp/bench.lock; flock 9
set -u
dir=$1; w=$2; out=$3; here=$(cd "$(dirname "$0")" && pwd)
pids=(); cleanup() { for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; }; trap cleanup EXIT
waitport() { local i; for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; exit 1; }
/tmp/h2/be/out/be /tmp/h2/cert.pem /tmp/h2/key.pem & pids+=($!)
{ echo "admin: { listen: 127.0.0.1:18199 }"; sed -e "s/18020/18190/; s/18030/18191/" $here/fw.yaml; } > /tmp/h2/fwp.yaml
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 $dir/forwarder -c /tmp/h2/fwp.yaml --log-level Warning & fw=$!; pids+=($fw)
waitport 18090; waitport 18190; waitport 18199
printf '\x00\x00\x00\x00\x07\x0a\x05hello' > /tmp/h2/grpc-req.bin
load() { case $w in
  get) h2load -c32 -m10 -t1 -n $1 http://127.0.0.1:18190/hello ;;
  grpc) h2load -c32 -m10 -t1 -n $1 -d /tmp/h2/grpc-req.bin -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:18190/echo.Echo/Unary ;;
esac 2>&1 | grep -E "finished in|status codes"; }
m() { curl -s http://127.0.0.1:18199/metrics | awk -v k="$1" '$1==k{print $2}'; }
cs() { cat /proc/$fw/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2} END{print s}'; }
thr() { ls /proc/$fw/task | wc -l; }
load 50000 > /dev/null
a0=$(m forwarder_process_allocated_bytes_total); g0=$(m 'forwarder_process_gc_collections_total{generation="0"}'); c0=$(cs)
load 100000
a1=$(m forwarder_process_allocated_bytes_total); g1=$(m 'forwarder_process_gc_collections_total{generation="0"}'); c1=$(cs)
echo "alloc_bytes_per_req=$(( (${a1%.*}-${a0%.*})/100000 )) gen0_gcs=$(( ${g1%.*}-${g0%.*} )) ctx_switches_per_req=$(echo "($c1-$c0)/100000" | bc -l | xargs printf %.2f) threads=$(thr)"
perf record -F 999 -g -p $fw -o $out.perf.data -- sleep 8 > /dev/null 2>&1 & pp=$!
load 400000 > /dev/null & lp=$!
wait $pp; kill $lp 2>/dev/null; wait $lp 2>/dev/null
perf report -i $out.perf.data --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -60 > $out.self.txt
perf report -i $out.perf.data --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -15 > $out.dso.txt
