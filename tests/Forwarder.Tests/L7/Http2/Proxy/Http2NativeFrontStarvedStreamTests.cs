using System.Diagnostics;
using System.Globalization;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Client;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// A stream refused by its connection's full response budget still moves on its opening window,
/// but its credit goes back in batches, not as one WINDOW_UPDATE per consumed read (one per small
/// gRPC message). The upstream, a python3-h2 server, counts the WINDOW_UPDATEs it gets for the
/// stream and sends the count as a trailer.
/// </summary>
public sealed class Http2NativeFrontStarvedStreamTests
{
    private const int Frames = 3000;
    private const int FrameSize = 100;

    /// <summary>/hold streams send 1 MiB in 16 KiB frames as far as their windows allow; /small sends the small frames, then trailers with the count.</summary>
    private const string Upstream = """
        import socket, sys, threading
        import h2.config, h2.connection, h2.events
        frames, size = (int(v) for v in sys.argv[1].split(','))
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0)); srv.listen(16)
        print(srv.getsockname()[1], flush=True)
        def serve(sock):
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            c.initiate_connection(); sock.sendall(c.data_to_send())
            todo = {}
            while True:
                for sid, t in list(todo.items()):
                    try:
                        while t['left'] > 0 and min(c.local_flow_control_window(sid), c.max_outbound_frame_size) >= t['size']:
                            c.send_data(sid, bytes([t['sent'] % 251]) * t['size']); t['sent'] += 1; t['left'] -= 1
                        if t['left'] == 0:
                            del todo[sid]
                            c.send_headers(sid, [(b'x-window-updates', str(t['updates']).encode())], end_stream=True)
                    except Exception:
                        todo.pop(sid, None)
                sock.sendall(c.data_to_send())
                try: data = sock.recv(65536)
                except OSError: return
                if not data: return
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.RequestReceived):
                        small = dict(e.headers)[b':path'] == b'/small'
                        c.send_headers(e.stream_id, [(b':status', b'200')])
                        todo[e.stream_id] = {'left': frames if small else 64, 'size': size if small else 16384, 'sent': 0, 'updates': 0}
                    elif isinstance(e, h2.events.WindowUpdated) and e.stream_id in todo:
                        todo[e.stream_id]['updates'] += 1
                sock.sendall(c.data_to_send())
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        """;

    /// <summary>
    /// argv: port, frames, frame size. Opens three /hold streams it never reads (they fill the
    /// budget), prints "opened", and on a line from stdin reads /small whole: prints
    /// "ok LENGTH UPDATES" (the trailer), or what went wrong.
    /// </summary>
    private const string Client = """
        import select, socket, sys
        import h2.config, h2.connection, h2.events
        port, frames, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        s = socket.create_connection(("127.0.0.1", port))
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        c.initiate_connection()
        c.increment_flow_control_window(1 << 30)
        def get(path):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", path)], end_stream=True)
            return sid
        for _ in range(3): get("/hold")
        s.sendall(c.data_to_send())
        print("opened", flush=True)
        small, body, updates = None, bytearray(), None
        while True:
            ready, _, _ = select.select([s] + ([sys.stdin] if small is None else []), [], [], 120)
            if not ready:
                print("stalled at %d bytes" % len(body)); sys.exit(1)
            if sys.stdin in ready:
                sys.stdin.readline(); small = get("/small")
            if s in ready:
                data = s.recv(1 << 20)
                if not data:
                    print("closed"); sys.exit(1)
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.DataReceived) and e.stream_id == small:
                        body += e.data; c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    elif isinstance(e, h2.events.TrailersReceived) and e.stream_id == small:
                        updates = dict(e.headers)[b'x-window-updates'].decode()
                    elif isinstance(e, h2.events.StreamEnded) and e.stream_id == small:
                        expected = b''.join(bytes([i % 251]) * size for i in range(frames))
                        print("ok %d %s" % (len(body), updates) if body == expected else "bad body of %d bytes" % len(body), flush=True)
                        sys.exit(0)
                    elif isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        print("reset %r" % e); sys.exit(1)
            s.sendall(c.data_to_send())
        """;

    [Fact]
    public async Task SmallFramesThroughAStarvedStream_FewWindowUpdates_TheBodyArrivesWhole()
    {
        await using var upstream = await Http2PeerServer.StartPythonAsync(Upstream, $"{Frames},{FrameSize}");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", upstream.Port), "http2: native\nresponseBufferPerConnection: 262144"));
        var metrics = forwarder.Metrics.Listener("web");

        using var client = Process.Start(new ProcessStartInfo("/usr/bin/python3")
        {
            ArgumentList = { "-c", Client, forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture), Frames.ToString(CultureInfo.InvariantCulture), FrameSize.ToString(CultureInfo.InvariantCulture) },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var error = client.StandardError.ReadToEndAsync();
        try
        {
            Assert.Equal("opened", await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)));
            await Eventually.TrueAsync(() => metrics.Http2ResponseBudgetExhaustions > 0, () => "the unread streams filled the budget", TimeSpan.FromSeconds(90));

            await client.StandardInput.WriteLineAsync("read");
            await client.StandardInput.FlushAsync();
            var line = await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(120));
            var parts = line?.Split(' ') ?? [];
            Assert.True(parts is ["ok", _, _], $"{line} {await error}");
            Assert.Equal(Frames * FrameSize, int.Parse(parts[1], CultureInfo.InvariantCulture));

            // A WINDOW_UPDATE per consumed read would be close to one per frame; in batches of at
            // least 16 KiB, the 300 KB body needs a couple of dozen at most.
            Assert.InRange(int.Parse(parts[2], CultureInfo.InvariantCulture), 1, Frames / 10);
        }
        finally
        {
            if (!client.HasExited)
            {
                client.Kill(entireProcessTree: true);
            }
        }
    }
}
