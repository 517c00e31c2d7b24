#!/bin/bash
# usage: arm.sh DIR BIN PORT [b-extra-yaml] — starts one link arm under /tmp/lc/run/DIR with the build in /tmp/lc/bin/BIN:
# node A (a.yaml: listeners PORT (web -> nginx 18080) and PORT+1 (bulk -> iperf3 -s 19700) through edge-b) and node B
# (b.yaml: link listener PORT-100); JIT Release builds, tcp.ioThreads 1, as a.yaml/b.yaml of tun-link6.sh; pids in DIR/a.pid, b.pid.
set -e; R=/tmp/lc/run; D=$R/$1; B=/tmp/lc/bin/$2/forwarder; P=$3; Q=$((P-100)); mkdir -p $D
cat > $D/a.yaml <<Y
tcp: { ioThreads: 1 }
node:
  name: edge-a
  certificate: $R/certs/edge-a.pem
  key: $R/certs/edge-a.key
  ca: $R/certs/ca.pem
  peers:
    - { name: edge-b, address: '127.0.0.1:$Q' }
listeners:
  - { name: web, listen: '127.0.0.1:$P', service: web }
  - { name: bulk, listen: '127.0.0.1:$((P+1))', service: bulk }
services:
  web:
    endpoints: [ { address: '127.0.0.1:18080', node: edge-b } ]
  bulk:
    endpoints: [ { address: '127.0.0.1:19700', node: edge-b } ]
Y
cat > $D/b.yaml <<Y
tcp: { ioThreads: 1 }
node:
  name: edge-b
  listen: 127.0.0.1:$Q
  certificate: $R/certs/edge-b.pem
  key: $R/certs/edge-b.key
  ca: $R/certs/ca.pem
  peers: [ { name: edge-a } ]
listeners:
  - { name: unused, listen: '127.0.0.1:$((Q+1))', protocol: echo }
services:
  web:
    export: true
    endpoints: [ { address: '127.0.0.1:18080' } ]
  bulk:
    export: true
    endpoints: [ { address: '127.0.0.1:19700' } ]
Y
for n in b a; do
  if [ -f $D/$n.pid ]; then old=$(cat $D/$n.pid); kill $old 2>/dev/null || true; while kill -0 $old 2>/dev/null; do sleep 0.1; done; fi
  nohup $B --config $D/$n.yaml --log-level ${LOG:-Warning} > $D/$n.log 2>&1 &
  echo $! > $D/$n.pid
done
# probes the web listener: a probe of the bulk one would occupy the one iperf3 server
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.2; done
