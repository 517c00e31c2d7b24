# usage: hold_gcdump.py BINARY COUNT OUT — opens COUNT idle connections through BINARY's tcp listener (idle_conns.py's
# backend and config) and takes a dotnet-gcdump before (OUT-0.gcdump) and at COUNT (OUT-n.gcdump). JIT build only.
import sys, subprocess, tempfile, time, signal
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "memory"))
import idle_conns as ic
binary, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
arm = ic.Arm("x", "forwarder", binary, {})
backend = ic.Backend(); listen = ic.free_port()
proxy = ic.start_proxy(arm, listen, backend.port, count, Path(tempfile.mkdtemp(prefix="hold-gcdump-")))
time.sleep(3)
subprocess.run(["/root/.dotnet/tools/dotnet-gcdump", "collect", "-p", str(proxy.pid), "-o", out + "-0.gcdump"], capture_output=True)
before = ic.rss_kb(proxy.pid)
clients = ic.open_connections(listen, count); backend.wait_held(count); time.sleep(2)
at = ic.rss_kb(proxy.pid)
subprocess.run(["/root/.dotnet/tools/dotnet-gcdump", "collect", "-p", str(proxy.pid), "-o", out + "-n.gcdump"], capture_output=True)
print(f"rss before {before} KiB at {count}: {at} KiB -> {(at-before)/count:.2f} KiB/conn")
for c in clients: c.close()
proxy.send_signal(signal.SIGKILL); proxy.wait(); backend.stop()
