#!/bin/bash
# usage: idle-series.sh BIN LABEL : node A+B link config (a.yaml, b.yaml, certs/ in /tmp/mem2-work: link-burst-a/b.yaml and `forwarder cert --out certs edge-a edge-b`) in netns mem2; node A's VmRSS and shared-lib RSS at several times after the start-up release
BIN=$1; LABEL=$2; shift 2
NS=mem2
cd /tmp/mem2-work
ip netns del $NS 2>/dev/null; ip netns add $NS; ip -n $NS link set lo up
env "$@" ip netns exec $NS $BIN -c b.yaml > b.log 2>&1 & B=$!
env "$@" ip netns exec $NS $BIN -c a.yaml > a.log 2>&1 & A=$!
for i in $(seq 1 300); do grep -q "Start-up memory released" a.log && grep -q "Start-up memory released" b.log && break; sleep 0.2; done
t0=$(date +%s.%N)
lib() { awk -v pat="$2" '/^[0-9a-f]+-/{m=($0 ~ pat)} m && /^Rss:/{s+=$2} END{printf "%.1f", s/1024}' /proc/$1/smaps; }
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$1/status; }
for t in 5 35 65; do
  while [ $(echo "$(date +%s.%N) - $t0 < $t" | bc) = 1 ]; do sleep 0.05; done
  echo "$LABEL +${t}s A: $(rss $A) (crypto $(lib $A libcrypto) libc $(lib $A 'libc\\.so') bin $(lib $A forwarder) heap $(lib $A heap)) B: $(rss $B)"
done
grep -h "memory released\|Quiet" a.log
cp /proc/$A/smaps a-$LABEL-late.smaps
kill $A $B; wait $A $B 2>/dev/null
ip netns del $NS
