using System.Diagnostics;
using System.Globalization;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Server;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// <c>http.responseBufferPerConnection</c> (review finding L12): a client that opens many streams
/// and reads none of their responses makes the native front buffer at most its budget plus one
/// opening window (64 KiB) per upstream stream, not a full 256 KiB window per stream; other
/// clients are served meanwhile, and once the client reads, every body arrives whole.
/// </summary>
public sealed class Http2NativeFrontResponseBudgetTests
{
    private const int Streams = 64;
    private const int BodySize = 4 * 1024 * 1024;
    private const int Budget = 1024 * 1024;
    private const int OpeningWindow = 64 * 1024;

    /// <summary>
    /// argv: port, streams, body size. Opens the streams and takes the server's frames but grants no
    /// flow-control credit (its windows stay at 65535) until a line comes on stdin; then reads every
    /// body and checks it against the backend's pattern. Prints "opened", then "ok" or what went wrong.
    /// </summary>
    private const string Client = """
import hashlib, select, socket, sys
import h2.config, h2.connection, h2.events
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def expected(i):
    block = bytes((k + i) % 251 for k in range(65536))
    h = hashlib.sha256()
    for _ in range(size // 65536): h.update(block)
    return h.hexdigest()
s = socket.create_connection(("127.0.0.1", port))
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
ids = {}
for i in range(n):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/big/%d" % i)], end_stream=True)
    ids[sid] = i
s.sendall(c.data_to_send())
print("opened", flush=True)
got = {sid: hashlib.sha256() for sid in ids}
length = {sid: 0 for sid in ids}
held, done, reading = [], set(), False
while len(done) < n:
    ready, _, _ = select.select([s] + ([] if reading else [sys.stdin]), [], [], 120)
    if not ready:
        print("stalled: %d of %d streams ended" % (len(done), n)); sys.exit(1)
    if sys.stdin in ready:
        sys.stdin.readline(); reading = True
        c.increment_flow_control_window(256 * 1024 * 1024)
        for sid in ids:
            if sid not in done: c.increment_flow_control_window(size, sid)
        for flow, sid in held: c.acknowledge_received_data(flow, sid)
    if s in ready:
        data = s.recv(1 << 20)
        if not data:
            print("closed"); sys.exit(1)
        for e in c.receive_data(data):
            if isinstance(e, h2.events.DataReceived):
                got[e.stream_id].update(e.data); length[e.stream_id] += len(e.data)
                if reading: c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                else: held.append((e.flow_controlled_length, e.stream_id))
            elif isinstance(e, h2.events.StreamEnded): done.add(e.stream_id)
            elif isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                print("reset %r" % e); sys.exit(1)
    s.sendall(c.data_to_send())
bad = [ids[sid] for sid in ids if length[sid] != size or got[sid].hexdigest() != expected(ids[sid])]
print("ok" if not bad else "bad bodies %r" % bad, flush=True)
""";

    [Fact]
    public async Task ManyUnreadStreams_BufferWithinTheBudgetPlusAnOpeningWindowEach_OthersAreServed_ThenEveryBodyArrivesWhole()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            var i = int.Parse(context.Request.Path.Value!.AsSpan("/big/".Length), CultureInfo.InvariantCulture);
            var block = new byte[65536];
            for (var k = 0; k < block.Length; k++)
            {
                block[k] = (byte)((k + i) % 251);
            }

            for (var sent = 0; sent < BodySize; sent += block.Length)
            {
                await context.Response.Body.WriteAsync(block, context.RequestAborted);
            }
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), $"http2: native\nresponseBufferPerConnection: {Budget}"));
        var web = forwarder.EndPoint("web");
        var metrics = forwarder.Metrics.Listener("web");

        using var client = Process.Start(new ProcessStartInfo("/usr/bin/python3")
        {
            ArgumentList = { "-c", Client, web.Port.ToString(CultureInfo.InvariantCulture), Streams.ToString(CultureInfo.InvariantCulture), BodySize.ToString(CultureInfo.InvariantCulture) },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var error = client.StandardError.ReadToEndAsync();
        try
        {
            Assert.Equal("opened", await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)));

            // Each stream fills its opening window, and the budget is spent on top-ups past them:
            // then no more comes (without the budget every stream would take its full 256 KiB window: 16 MiB).
            const long Bound = Budget + ((long)Streams * OpeningWindow);
            long peak = 0;
            await Eventually.TrueAsync(
                () =>
                {
                    peak = Math.Max(peak, metrics.Http2ResponseBuffered);
                    return peak > Bound || (metrics.Http2ResponseBudgetExhaustions > 0 && metrics.Http2ResponseBuffered >= Streams * (OpeningWindow - (OpeningWindow / 4)));
                },
                () => $"the streams filled their windows (buffered {metrics.Http2ResponseBuffered}, budget full {metrics.Http2ResponseBudgetExhaustions} times)",
                TimeSpan.FromSeconds(90));
            Assert.InRange(peak, 0, Bound);

            // The top-ups past the opening windows are the budget's credit, held until the streams give it back.
            Assert.InRange(metrics.Http2ResponseBudgetHeld, 1, Budget);

            // Another client, on its own connection and budget, gets a whole body meanwhile.
            var (exit, output, curlError) = await PeerProcess.RunAsync(
                "/usr/bin/curl",
                ["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", $"http://127.0.0.1:{web.Port}/big/7"],
                timeout: TimeSpan.FromSeconds(90));
            Assert.True(exit == 0, curlError);
            Assert.Equal($"200 {BodySize}", output);
            Assert.InRange(metrics.Http2ResponseBuffered, 0, Bound);

            await client.StandardInput.WriteLineAsync("read");
            await client.StandardInput.FlushAsync();
            Assert.Equal("ok", await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(180)));
            await client.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(client.ExitCode == 0, await error);
        }
        finally
        {
            if (!client.HasExited)
            {
                client.Kill(entireProcessTree: true);
            }
        }

        // Every stream's share went back with its lease: nothing stays counted.
        await Eventually.TrueAsync(
            () => metrics.Http2ResponseBuffered == 0 && metrics.Http2ResponseBudgetHeld == 0,
            () => $"nothing is buffered (still {metrics.Http2ResponseBuffered}) nor held (still {metrics.Http2ResponseBudgetHeld})");
    }
}
