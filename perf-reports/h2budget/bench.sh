#!/bin/bash
# Single large h2c download through the native front: base (main e4bd01a) vs budget build vs direct.
set -u
cd /tmp/h2b
nghttpd --no-tls -d /tmp/h2b/www 18410 >/dev/null 2>&1 & be=$!
for k in base new; do
  port=$([ $k = base ] && echo 18411 || echo 18412)
  cat > fw-$k.yaml <<Y
tcp:
  ioThreads: 1
listeners:
  - name: h2c
    listen: 127.0.0.1:$port
    protocol: http
    http: { http2: native }
    routes:
      - service: be
services:
  be:
    http: { version: "2" }
    endpoints:
      - address: 127.0.0.1:18410
Y
  ./fw-$k/forwarder -c fw-$k.yaml --log-level Warning >/dev/null 2>&1 & eval pid_$k=$!
done
for p in 18410 18411 18412; do for i in $(seq 100); do curl -s --http2-prior-knowledge -o /dev/null http://127.0.0.1:$p/big && break; sleep 0.2; done; done
exec 9>/tmp/bench.lock; flock 9
for rep in 1 2 3 4 5; do
  for arm in direct:18410 base:18411 new:18412; do
    n=${arm%%:*}; p=${arm##*:}
    s=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{speed_download} %{size_download}' http://127.0.0.1:$p/big)
    echo "$rep $n $s"
  done
  # 8 concurrent streams on one connection (h2load): 16 x 32 MiB, 8 at a time
  for arm in direct:18410 base:18411 new:18412; do
    n=${arm%%:*}; p=${arm##*:}
    r=$(h2load -n16 -c1 -m8 http://127.0.0.1:$p/mid 2>&1 | grep -E "^finished in" )
    echo "$rep m8-$n $r"
  done
done
exec 9>&-
kill $be $pid_base $pid_new
