#!/bin/bash
# Interception overhead (issue 20): what the forwarder's intercept path costs against a plain
# listener, a direct connection and kube-proxy's iptables DNAT path, at the same fixed rates.
#
# Three network namespaces: a client "pod", the "node" (forwarders and iptables rules) and a
# backend "pod" running nginx (1 worker). The pod reaches everything through the node over veth
# pairs, so every arm crosses the same two links and the node's conntrack:
#   direct        pod -> backend (routed by the node; no proxy, no NAT)
#   dnat          pod -> VIP, nat DNAT in the node (kube-proxy's KUBE-SERVICES/SVC/SEP chains)
#   listener      pod -> forwarder tcp listener on the node -> backend
#   intercept     pod -> VIP, caught by the forwarder's own rules (intercept mode redirect) -> backend
#   tproxy        the same in intercept mode tproxy (a second forwarder: its rules are in mangle)
#   l7-listener   pod -> forwarder http listener -> backend
#   l7-intercept  pod -> http VIP (appProtocol http), redirect -> backend
#   l7-tproxy     the same through the tproxy forwarder
# Load: bench load (open loop, coordinated omission corrected; max = closed loop) with HTTP/1.1
# keep-alive, and with Connection: close (a new connection for every request: --close).
# Arms are interleaved run by run, their order rotated each repetition.
#
# Usage: bench/intercept/run.sh [--reps N] [--duration S] [--warmup S] [--rates LIST]
#          [--close-rates LIST] [--connections C] [--arms LIST] [--out DIR]
#          [--forwarder BINARY (default: the Release JIT build, built first)] [--skip-build]
# Needs root (netns, iptables) and nginx. Not the NativeAOT binary for now: with these configs it
# died under load (perf-reports/interception/README.md).
# Writes OUT/runs.tsv (one line per run) and OUT/tables.md (medians, from summarize.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

REPS=3 DURATION=5 WARMUP=2 CONNECTIONS=32 BUILD=1
RATES=2000,5000,10000,max
CLOSE_RATES=1000,2000,max
ARMS=direct,dnat,listener,intercept,tproxy,l7-listener,l7-intercept,l7-tproxy
OUT=$REPO/perf-reports/interception
FWD=$REPO/forwarder/bin/Release/net10.0/forwarder
while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --close-rates) CLOSE_RATES=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --arms) ARMS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --forwarder) FWD=$(realpath "$2"); shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
  esac
done

BENCH=$REPO/bench/bin/Release/net10.0/bench
if [ $BUILD = 1 ]; then
  dotnet build -c Release forwarder
  dotnet build -c Release bench
fi
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin

POD=ib-pod NODE=ib-node BE=ib-be
POD_IP=198.19.201.2 NODE_POD_IP=198.19.201.1 NODE_BE_IP=198.19.202.1 BE_IP=198.19.202.2
VIPS=198.19.97.0/24
declare -A URL=(
  [direct]=http://$BE_IP:80/
  [dnat]=http://198.19.97.20:80/
  [listener]=http://$NODE_POD_IP:8080/
  [intercept]=http://198.19.97.10:80/
  [tproxy]=http://198.19.97.12:80/
  [l7-listener]=http://$NODE_POD_IP:8081/
  [l7-intercept]=http://198.19.97.11:80/
  [l7-tproxy]=http://198.19.97.13:80/
)
# Which forwarder's CPU a run is charged with (none for the arms without a proxy).
declare -A PROXY=([listener]=redirect [intercept]=redirect [l7-listener]=redirect [l7-intercept]=redirect [tproxy]=tproxy [l7-tproxy]=tproxy)

WORK=$(mktemp -d)
declare -A PID=()
cleanup() {
  for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
  wait
  for ns in $POD $NODE $BE; do ip netns del $ns 2>/dev/null || true; done
  [ -d "$OUT" ] && mkdir -p "$OUT/logs" && cp "$WORK"/*.log "$OUT/logs/" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- the namespaces -------------------------------------------------------------------------
for ns in $POD $NODE $BE; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; inns $ns ip link set lo up; done
inns $NODE ip link add ibp0 type veth peer name eth0 netns $POD
inns $NODE ip link add ibb0 type veth peer name eth0 netns $BE
inns $NODE ip addr add $NODE_POD_IP/24 dev ibp0
inns $NODE ip addr add $NODE_BE_IP/24 dev ibb0
inns $NODE ip link set ibp0 up
inns $NODE ip link set ibb0 up
inns $POD ip addr add $POD_IP/24 dev eth0
inns $POD ip link set eth0 up
inns $POD ip route add default via $NODE_POD_IP
inns $BE ip addr add $BE_IP/24 dev eth0
inns $BE ip link set eth0 up
inns $BE ip route add default via $NODE_BE_IP
# The node routes pod to pod; VIPs exist only as rules (what no rule catches goes to lo, nowhere).
inns $NODE sysctl -qw net.ipv4.ip_forward=1
inns $NODE ip route add $VIPS dev lo
# New-connection runs: the client may close first (TIME_WAIT on its ports), and at a few
# thousand connections a second the node's conntrack would fill in its default 120 s TIME_WAIT.
inns $POD sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

# kube-proxy's iptables mode for one ClusterIP with one endpoint (no masquerade: pod to pod).
inns $NODE iptables-restore --noflush <<RULES
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-IBENCH - [0:0]
:KUBE-SEP-IBENCH - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 198.19.97.20/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-IBENCH
-A KUBE-SVC-IBENCH -j KUBE-SEP-IBENCH
-A KUBE-SEP-IBENCH -p tcp -m tcp -j DNAT --to-destination $BE_IP:80
COMMIT
RULES
inns $NODE sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=10

# --- the processes --------------------------------------------------------------------------
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8000; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen $BE_IP:80 backlog=4096;
        location / { return 200 "hello world\n"; }
    }
}
NGINX
ip netns exec $BE nginx -c "$WORK/nginx.conf" -p "$WORK" & PID[nginx]=$!

forwarder_config() { # MODE ADMIN_PORT INTERCEPT_PORT TCP_VIP HTTP_VIP
  cat <<YAML
admin: { listen: 127.0.0.1:$2 }
intercept: { listen: "[::]:$3", mode: $1 }
listeners:
  - { name: tcp, listen: '$NODE_POD_IP:8080', protocol: tcp, service: web-tcp }
  - name: http
    listen: '$NODE_POD_IP:8081'
    protocol: http
    routes: [ { name: all, match: { path: { prefix: / } }, service: web-http } ]
services:
  web-tcp:
    vips: ['$4:80']
    endpoints: [ { address: '$BE_IP:80' } ]
  web-http:
    appProtocol: http
    vips: ['$5:80']
    endpoints: [ { address: '$BE_IP:80' } ]
YAML
}
# Each forwarder has a listener pair; only the redirect one's are measured (the tproxy one's
# ports are taken, so it listens on another address: the node's link to the backend).
forwarder_config redirect 9901 15001 198.19.97.10 198.19.97.11 > "$WORK/redirect.yaml"
forwarder_config tproxy 9902 15002 198.19.97.12 198.19.97.13 | sed "s/'$NODE_POD_IP:808/'$NODE_BE_IP:808/" > "$WORK/tproxy.yaml"
start_proxy() { # MODE
  ip netns exec $NODE "$FWD" --config "$WORK/$1.yaml" >> "$WORK/$1.log" 2>&1 & PID[$1]=$!
}
for mode in redirect tproxy; do start_proxy $mode; done

ready() { inns $POD curl -sf -o /dev/null --max-time 2 "$1"; }
deadline=$((SECONDS + 60))
for arm in ${ARMS//,/ }; do
  until ready "${URL[$arm]}"; do
    if [ $SECONDS -gt $deadline ]; then
      echo "arm $arm (${URL[$arm]}) does not answer; logs in $WORK" >&2
      tail -n 20 "$WORK"/*.log >&2
      trap - EXIT; exit 1
    fi
    sleep 0.2
  done
done

# --- the runs -------------------------------------------------------------------------------
cpu_ticks() { [ -n "${1:-}" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" || echo 0; }
mkdir -p "$OUT"
TSV=$OUT/runs.tsv
{
  echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD); $(nproc) cores, $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); bench load -c $CONNECTIONS -d ${DURATION}s --warmup ${WARMUP}s; reps $REPS"
  printf 'rep\tworkload\trate\tarm\tachieved\tp50_us\tp99_us\tp999_us\terrors\tunfinished\tproxy_cpu_us_per_req\tload1\n'
} > "$TSV"
read -ra arms <<< "${ARMS//,/ }"
run=0
for rep in $(seq 1 "$REPS"); do
  # Rotate the arm order each repetition so none always runs first after a change of load.
  order=("${arms[@]:$(( (rep - 1) % ${#arms[@]} ))}" "${arms[@]:0:$(( (rep - 1) % ${#arms[@]} ))}")
  for workload in keepalive close; do
    [ $workload = keepalive ] && rates=$RATES || rates=$CLOSE_RATES
    for rate in ${rates//,/ }; do
      for arm in "${order[@]}"; do
        run=$((run + 1))
        args=(load --url "${URL[$arm]}" -c "$CONNECTIONS" -d "${DURATION}s" --warmup "${WARMUP}s" --json "$WORK/run.json")
        [ "$rate" != max ] && args+=(-R "$rate")
        [ $workload = close ] && args+=(--close)
        proxy=${PROXY[$arm]:-}
        for mode in redirect tproxy; do
          if ! kill -0 "${PID[$mode]}" 2>/dev/null; then
            echo "the $mode forwarder is gone (see logs/$mode.log); restarted" >&2
            start_proxy $mode
            until ready "${URL[${mode/redirect/intercept}]}"; do sleep 0.2; done
          fi
        done
        rm -f "$WORK/run.json"
        before=$(cpu_ticks "${proxy:+${PID[$proxy]}}")
        inns $POD "$BENCH" "${args[@]}" > "$WORK/run.txt" 2>&1 || true
        after=$(cpu_ticks "${proxy:+${PID[$proxy]}}")
        python3 - "$WORK/run.json" "$rep" "$workload" "$rate" "$arm" "$((after - before))" "$(getconf CLK_TCK)" "$((DURATION + WARMUP))" "$(cut -d' ' -f1 /proc/loadavg)" >> "$TSV" <<'PY'
import json, sys
path, rep, workload, rate, arm, ticks, hz, seconds, load1 = sys.argv[1:]
try:
    r = json.load(open(path))
except OSError:  # bench load failed before writing its results: a row that says so
    print("\t".join((rep, workload, rate, arm, "0", "", "", "", "failed", "", "", load1)))
    sys.exit()
lat = r["latencyUs"]
# The proxy's CPU covers warm-up and measured time; so does this request count.
served = r["achievedRate"] * float(seconds)
cpu = "" if arm in ("direct", "dnat") or served == 0 else f"{int(ticks) / int(hz) * 1e6 / served:.1f}"
print("\t".join(str(x) for x in (rep, workload, rate, arm, round(r["achievedRate"]), lat["p50"], lat["p99"], lat["p99.9"],
                                 r["errors"], r["unfinished"], cpu, load1)))
PY
        tail -n 1 "$TSV" | awk -v n=$run '{ printf "[%d] %s\n", n, $0 }'
        # A run with errors keeps bench's own summary (errors by reason) beside the table.
        tail -n 1 "$TSV" | awk -F'\t' '$9 != 0 || $10 != 0 { exit 1 }' || cp "$WORK/run.txt" "$OUT/failed-run-$run.txt"
      done
    done
  done
done
python3 "$REPO/bench/intercept/summarize.py" "$TSV" > "$OUT/tables.md"
echo "wrote $TSV and $OUT/tables.md"
