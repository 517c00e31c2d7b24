#!/bin/bash
# usage: setup.sh FORWARDER_DLL — the punched path vs the relay across NAT (issue 22 item 5).
# Builds the NAT lab of tests/Forwarder.Tests/Infrastructure/NatLab.cs in namespaces named quic*
# (two sites, each a node behind its own MASQUERADE router, a relay on the "wan"), then starts:
# in quicnb node B (transport auto, link port 36200) with nginx (36080) and iperf3 (36500) beside
# it on its loopback; on the relay the relay (36700); in quicna two node A's, edge-a (TCP links
# only, no address for B: every stream through the relay, fronts 36310/36311) and edge-c (QUIC, no
# address for B: the relay introduces them and they punch through both NATs, fronts 36330/36331).
# The load generators run in quicna too, as a client on node A's node would. Nothing here touches
# the host's own namespace. pids in /tmp/quic-nat-bench/pids (name pid); stop.sh ends it all.
set -e
dll=$(realpath "$1"); here=$(dirname "$(realpath "$0")"); run=/tmp/quic-nat-bench
mkdir -p $run && cd $run
[ -d certs ] || { dotnet "$dll" cert --out certs edge-a edge-b edge-c >/dev/null; dotnet "$dll" cert --out certs --relay relay-1 >/dev/null; }
cp "$here"/*.yaml "$here"/nginx.conf .
ns() { ip netns exec quic$1 "${@:2}"; }
for n in wan rly ra rb na nb; do ip netns add quic$n; ns $n ip link set lo up; done
wire() { # wire NS_LEFT ADDR_LEFT NS_RIGHT ADDR_RIGHT
  ip link add q$1$3 type veth peer name q$3$1
  ip link set q$1$3 netns quic$1; ip link set q$3$1 netns quic$3
  ns $1 ip addr add $2 dev q$1$3; ns $1 ip link set q$1$3 up
  ns $3 ip addr add $4 dev q$3$1; ns $3 ip link set q$3$1 up
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
  ns $1 iptables -t nat -A POSTROUTING -s 198.19.$3.0/24 -o q${1}wan -j MASQUERADE
}
site ra na 1
site rb nb 2
ns nb nginx -c $run/nginx.conf
ns nb iperf3 -s -p 36500 -D --pidfile $run/iperf3.pid
: > pids
start() { ns $1 dotnet "$dll" $3 --config $2.yaml > $2.log 2>&1 & echo "$2 $!" >> pids; }
start rly relay relay; sleep 2
start nb b; sleep 3
start na a-relay; start na a-punch
sleep 5
# Warm both arms: registered with the relay, the punched link up, JIT warm.
for port in 36310 36330; do
  for i in $(seq 1 60); do ns na curl -sf -o /dev/null http://127.0.0.1:$port/ && break; [ $i = 60 ] && { echo "port $port does not answer"; exit 1; }; sleep 1; done
  ns na wrk -t1 -c10 -d3s http://127.0.0.1:$port/ > /dev/null
done
grep -h "Punched through" a-punch.log
