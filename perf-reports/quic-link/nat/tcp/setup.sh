#!/bin/bash
# usage: setup.sh FORWARDER_DLL — the punched TCP path (simultaneous open) vs a direct TCP link vs
# the relay across NAT (issue 22, point 3). The NAT lab of ../setup.sh again, in namespaces named
# tso*, with site B's router dropping UDP to and from node B (so no QUIC link, dialled or punched)
# and forwarding TCP 198.18.2.2:37200 to node B's link port (the direct arm's route). Node B runs
# transport auto on 37200 with nginx (37080) and iperf3 (37500) on its loopback; the relay 37700;
# on site A three node A's: edge-a (TCP, no address for B: the relay; fronts 37310/37311), edge-c
# (auto, no address for B: QUIC punches fail, the relay introduces them for TCP simultaneous open;
# 37330/37331) and edge-d (TCP, B's forwarded address: a direct TCP link; 37350/37351).
# pids in /tmp/tcpso-nat-bench/pids; stop.sh ends it all. Nothing touches the host's namespace.
set -e
dll=$(realpath "$1"); here=$(dirname "$(realpath "$0")"); run=/tmp/tcpso-nat-bench
mkdir -p $run && cd $run
[ -d certs ] || { dotnet "$dll" cert --out certs edge-a edge-b edge-c edge-d >/dev/null; dotnet "$dll" cert --out certs --relay relay-1 >/dev/null; }
cp "$here"/*.yaml "$here"/nginx.conf .
ns() { ip netns exec tso$1 "${@:2}"; }
for n in wan rly ra rb na nb; do ip netns add tso$n; ns $n ip link set lo up; done
wire() { # wire NS_LEFT ADDR_LEFT NS_RIGHT ADDR_RIGHT
  ip link add t$1$3 type veth peer name t$3$1
  ip link set t$1$3 netns tso$1; ip link set t$3$1 netns tso$3
  ns $1 ip addr add $2 dev t$1$3; ns $1 ip link set t$1$3 up
  ns $3 ip addr add $4 dev t$3$1; ns $3 ip link set t$3$1 up
}
wire wan 198.18.0.1/24 rly 198.18.0.10/24
wire wan 198.18.1.1/24 ra 198.18.1.2/24
wire wan 198.18.2.1/24 rb 198.18.2.2/24
ns rly ip route add default via 198.18.0.1
ns wan sysctl -qw net.ipv4.ip_forward=1
site() { # site ROUTER NODE N
  wire $1 198.19.$3.1/24 $2 198.19.$3.10/24
  ns $1 ip route add default via 198.18.$3.1
  ns $2 ip route add default via 198.19.$3.1
  ns $1 sysctl -qw net.ipv4.ip_forward=1
  ns $1 iptables -t nat -A POSTROUTING -s 198.19.$3.0/24 -o t${1}wan -j MASQUERADE
}
site ra na 1
site rb nb 2
ns rb iptables -I FORWARD -d 198.19.2.10 -p udp -j DROP
ns rb iptables -I FORWARD -s 198.19.2.10 -p udp -j DROP
ns rb iptables -t nat -A PREROUTING -d 198.18.2.2 -p tcp --dport 37200 -j DNAT --to-destination 198.19.2.10:37200
ns nb nginx -c $run/nginx.conf
ns nb iperf3 -s -p 37500 -D --pidfile $run/iperf3.pid
: > pids
# ip netns exec execs the node, so $! is the node itself (through the ns function it was a subshell, which stop.sh killed while the node ran on).
start() { ip netns exec tso$1 dotnet "$dll" $3 --config $2.yaml > $2.log 2>&1 & echo "$2 $!" >> pids; }
start rly relay relay; sleep 2
start nb b; sleep 3
start na a-relay; start na a-punch; start na a-direct
sleep 5
# Warm the arms: registered with the relay, the links up (the punched one after its QUIC punch fails), JIT warm.
for port in 37310 37330 37350; do
  for i in $(seq 1 90); do ns na curl -sf -o /dev/null http://127.0.0.1:$port/ && break; [ $i = 90 ] && { echo "port $port does not answer"; exit 1; }; sleep 1; done
done
for i in $(seq 1 90); do
  ns na curl -sf http://127.0.0.1:37904/metrics | grep -q 'path="punched-tcp"} [1-9]' && break
  [ $i = 90 ] && { echo "no stream went over the punched TCP link"; exit 1; }
  ns na curl -sf -o /dev/null http://127.0.0.1:37330/; sleep 1
done
for port in 37310 37330 37350; do ns na wrk -t1 -c10 -d3s http://127.0.0.1:$port/ > /dev/null; done
grep -h "simultaneous open" a-punch.log
