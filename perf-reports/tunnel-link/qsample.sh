#!/bin/bash
# usage: qsample.sh clientport linkport [samples] -- during one iperf3 stream through a link (client -> node A -> link -> node B -> iperf3 server on 29500),
# samples every socket queue on the path with ss every 20 ms and summarises: node A's client socket Recv-Q (A behind its input),
# the link's bytes in the kernel (A's Send-Q + B's Recv-Q, against the yamux window), B's Recv-Q empty (B starved), the iperf3 server's Recv-Q.
CP=$1; LP=$2; N=${3:-150}
iperf3 -c 127.0.0.1 -p $CP -t 8 > /tmp/link5/qs-iperf.txt 2>&1 &
sleep 1.5
for i in $(seq 1 $N); do
  ss -tnH state established "( sport = :$CP or dport = :$LP or sport = :$LP or sport = :29500 )" | awk -v cp=$CP -v lp=$LP '
    { split($3,l,":"); split($4,r,":"); lport=l[length(l)]; rport=r[length(r)]
      if (lport==cp && $1>ac) ac=$1
      if (rport==lp) asq+=$2
      if (lport==lp) brq+=$1
      if (lport==29500 && $1>srq) srq=$1 }
    END { printf "%d %d %d %d\n", ac, asq, brq, srq }'
  sleep 0.02
done > /tmp/link5/qs-raw.txt
wait
g=$(awk '/receiver/{print $7, $8}' /tmp/link5/qs-iperf.txt)
/usr/bin/python3 - "$g" <<'PY'
import sys,statistics as st
rows=[list(map(int,l.split())) for l in open('/tmp/link5/qs-raw.txt') if l.strip()]
def pct(xs,p): xs=sorted(xs); return xs[min(len(xs)-1,int(p*len(xs)))]
ac=[r[0] for r in rows]; fl=[r[1]+r[2] for r in rows]; br=[r[2] for r in rows]; sr=[r[3] for r in rows]
M=1<<20
print(f"{sys.argv[1]}; {len(rows)} samples")
print(f"  A's client Recv-Q  median {st.median(ac)/M:.2f} MiB, p90 {pct(ac,.9)/M:.2f}")
print(f"  link in kernel (A Send-Q + B Recv-Q) median {st.median(fl)/M:.2f} MiB, p90 {pct(fl,.9)/M:.2f}, max {max(fl)/M:.2f}; >= 3 MiB in {sum(f>=3*M for f in fl)*100//len(fl)}%")
print(f"  B's link Recv-Q < 64 KiB (B has nothing to read) in {sum(b<65536 for b in br)*100//len(br)}%")
print(f"  iperf3 server Recv-Q median {st.median(sr)/M:.2f} MiB; < 64 KiB in {sum(s<65536 for s in sr)*100//len(sr)}%")
PY
