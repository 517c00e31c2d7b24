#!/bin/bash
# usage: link-burst.sh BIN LABEL [iperf-seconds] — two forwarders linked by TLS 1.3 + yamux in netns mem-burst,
# iperf3 -P 100 through node A's bulk listener; prints RSS (MiB) of A and B before, at peak, 5 s and 30 s after the burst.
# link-burst-work/ (next to this script) holds certs/ (forwarder cert --out certs edge-a edge-b) and a.yaml, b.yaml
# (copies of link-burst-a.yaml, link-burst-b.yaml). Run each under the bench lock.
BIN=$1; LABEL=$2; SECS=${3:-8}
NS=mem-burst
cd "$(dirname "$0")/link-burst-work"
ip netns del $NS 2>/dev/null; ip netns add $NS; ip -n $NS link set lo up
ip netns exec $NS iperf3 -s -p 19500 >/dev/null 2>&1 & IP=$!
ip netns exec $NS $BIN -c b.yaml > b.log 2>&1 & B=$!
ip netns exec $NS $BIN -c a.yaml > a.log 2>&1 & A=$!
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$1/status; }
for i in $(seq 1 300); do grep -q "Start-up memory released" a.log && grep -q "Start-up memory released" b.log && break; sleep 0.2; done
sleep 5
a0=$(rss $A); b0=$(rss $B)
ip netns exec $NS iperf3 -c 127.0.0.1 -p 19301 -P 100 -t $SECS -J > iperf.json 2>&1 & C=$!
pa=0; pb=0
while kill -0 $C 2>/dev/null; do
  pa=$(awk -v x=$(rss $A) -v y=$pa 'BEGIN{print (x>y)?x:y}'); pb=$(awk -v x=$(rss $B) -v y=$pb 'BEGIN{print (x>y)?x:y}'); sleep 0.25
done
gbit=$(/usr/bin/python3 -c "import json; d=json.load(open('iperf.json')); print(round(d['end']['sum_received']['bits_per_second']/1e9,2))" 2>/dev/null)
sleep 5; a5=$(rss $A); b5=$(rss $B)
sleep 25; a30=$(rss $A); b30=$(rss $B)
cp /proc/$A/smaps a.smaps 2>/dev/null
echo "$LABEL gbit=$gbit A: before $a0 peak $pa +5s $a5 +30s $a30 | B: before $b0 peak $pb +5s $b5 +30s $b30"
kill $A $B $IP; wait $A $B $IP 2>/dev/null
ip netns del $NS
