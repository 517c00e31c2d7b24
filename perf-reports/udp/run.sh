#!/bin/bash
# UDP datagrams/s through the forwarder vs nginx stream udp vs direct, with bench's udp load
# generator (closed loop, one datagram in flight per socket) against bench's udp echo backend.
# Every process on loopback; proxies with one thread/worker. Build first:
#   dotnet build -c Release forwarder && dotnet build -c Release bench
# Usage: perf-reports/udp/run.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-2}
OUT=perf-reports/udp
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

FWD=forwarder/bin/Release/net10.0/forwarder
BENCH=bench/bin/Release/net10.0/bench

$BENCH serve --udp-echo 127.0.0.1:19101 > "$WORK/echo.log" & PIDS+=($!)
cat > "$WORK/forwarder.yaml" <<YAML
tcp: { ioThreads: 1 }
listeners:
  - { name: udp, listen: '127.0.0.1:19102', protocol: udp, service: echo, udp: { idleTimeout: 30s } }
services:
  echo:
    endpoints: [ { address: 127.0.0.1:19101 } ]
YAML
$FWD --config "$WORK/forwarder.yaml" > "$WORK/forwarder.log" 2>&1 & PIDS+=($!)
cat > "$WORK/nginx.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
stream {
    server {
        listen 127.0.0.1:19103 udp;
        proxy_pass 127.0.0.1:19101;
        proxy_timeout 30s;
    }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)
sleep 3

run() { # NAME PORT ARGS...
  local name=$1 port=$2; shift 2
  echo "== $name $*"
  $BENCH load --udp 127.0.0.1:$port --size 64 "$@" | grep -E "Requests/sec| 50.000%| 99.000%| 99.900%|requests in|Errors|RATE" || true
}

{
  echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD); nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); $(nproc) cores"
  for rep in $(seq 1 "$REPS"); do
    for c in 1 32; do
      for arm in direct:19101 forwarder:19102 nginx:19103; do
        run "${arm%%:*} rep=$rep c=$c" "${arm##*:}" -c $c -d 10s --warmup 2s
      done
    done
    for arm in direct:19101 forwarder:19102 nginx:19103; do
      run "${arm%%:*} rep=$rep rate=20000" "${arm##*:}" -c 32 -R 20000 -d 10s --warmup 2s
    done
  done
} | tee "$OUT/runs.txt"
