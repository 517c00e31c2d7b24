#!/bin/bash
# usage: bench.sh REPS WORKLOADS ARMS FW_DIR[:ENGINE]...
#   ENGINE (optional): the listeners' http.http2 (auto, native, kestrel), to compare the HTTP/2 engines of one build
#   WORKLOADS: comma list of get (h2c GET, 5-byte answer), grpc (h2c gRPC unary), tls (GET over TLS, ALPN h2)
#   ARMS: comma list of direct, hap1 (HAProxy nbthread 1), hapN (HAProxy default threads), fw0, fw1, ... (one per FW_DIR)
# Starts the backend, HAProxy (both) and one forwarder per FW_DIR, warms each arm up once, then runs
# the arms interleaved REPS times. Prints one line per run: rps, proxy CPU per request (utime+stime
# of the proxy process over the run), proxy RSS after the run. Take the lock first: exec 9>/tmp/bench.lock; flock 9
# SHIELD=NICE (root for below 0): every process of the benchmark, h2load included, runs in one
# session of its own at that autogroup nice, so the builds and tests sharing the machine take
# little of its cores (the arms still compete among themselves with equal weights).
set -u
if [[ -n ${SHIELD:-} && -z ${SHIELDED:-} ]]; then
  exec setsid -w env SHIELDED=1 bash -c 'echo "$0" > /proc/$$/autogroup && exec "$@"' "$SHIELD" "$0" "$@"
fi
reps=$1; workloads=$2; arms=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-100000}
pids=()
cleanup() { for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
waitport() { local i; for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
/tmp/h2/be/out/be /tmp/h2/cert.pem /tmp/h2/key.pem & bepid=$!; pids+=($bepid)
haproxy -f $here/haproxy-nt1.cfg & hap1=$!; pids+=($hap1)
haproxy -f $here/haproxy-nt2.cfg & hapN=$!; pids+=($hapN)
declare -A pid port_get port_tls
pid[direct]=$bepid; port_get[direct]=18090; port_tls[direct]=18093
pid[hap1]=$hap1; port_get[hap1]=18021; port_tls[hap1]=18031
pid[hapN]=$hapN; port_get[hapN]=18022; port_tls[hapN]=18032
k=0
for spec in "$@"; do
  dir=${spec%%:*}; engine=""; [[ $spec == *:* ]] && engine=${spec##*:}
  sed -e "s/18020/181${k}0/; s/18030/181${k}1/" $here/fw.yaml > /tmp/h2/fw$k.yaml
  [[ -n $engine ]] && sed -i "s/^    protocol: http$/    protocol: http\n    http: { http2: $engine }/" /tmp/h2/fw$k.yaml
  $dir/forwarder -c /tmp/h2/fw$k.yaml --log-level Warning & pid[fw$k]=$!; pids+=(${pid[fw$k]})
  port_get[fw$k]=181${k}0; port_tls[fw$k]=181${k}1
  echo "fw$k = $spec" ; k=$((k+1))
done
for p in 18090 18093 18021 18022 18031 18032; do waitport $p; done
for ((i=0;i<k;i++)); do waitport 181${i}0; waitport 181${i}1; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
rss() { awk '/VmRSS/{print $2/1024}' /proc/$1/status; }
run() { # workload arm -> h2load output
  local w=$1 a=$2
  case $w in
    get) h2load -c32 -m10 -t1 -n $n http://127.0.0.1:${port_get[$a]}/hello ;;
    grpc) h2load -c32 -m10 -t1 -n $n -d /tmp/h2/grpc-req.bin -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:${port_get[$a]}/echo.Echo/Unary ;;
    tls) h2load -c32 -m10 -t1 -n $n https://127.0.0.1:${port_tls[$a]}/hello ;;
  esac 2>&1
}
printf '\x00\x00\x00\x00\x07\x0a\x05hello' > /tmp/h2/grpc-req.bin
IFS=, read -ra W <<< "$workloads"; IFS=, read -ra A <<< "$arms"
for w in "${W[@]}"; do for a in "${A[@]}"; do n=20000 run $w $a > /dev/null; done; done
for rep in $(seq 1 $reps); do
  for w in "${W[@]}"; do for a in "${A[@]}"; do
    p=${pid[$a]}; c0=$(cpu $p); out=$(run $w $a); c1=$(cpu $p)
    rps=$(echo "$out" | awk '/finished in/{print $4}' | tr -d ,)
    ok=$(echo "$out" | awk '/status codes:/{print $3}')
    printf '%s %s rep=%s rps=%s 2xx=%s cpu_us_per_req=%.1f rss_mb=%.0f %s load=%s\n' $w $a $rep "$rps" "$ok" $(echo "($c1-$c0)*10000/$n" | bc -l) $(rss $p) "$(echo "$out" | grep 'time for request' | awk '{print "mean="$5}')" "$(cut -d' ' -f1 /proc/loadavg)"
  done; done
done
