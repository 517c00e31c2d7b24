using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Client;
using Forwarder.Tests.L7.Http2.Server;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// A small response the upstream's read held whole (head, body, trailers, END_STREAM) goes to
/// the client whole: in one write, so the client's one read has all of it (the head is handed on
/// at the upstream read's end; sent whole or through the stream's pipe, it leaves in one batch, so
/// these check what the client gets, not which of the two ways it went). Larger ones, ones
/// that come in pieces, and ones the client's window does not take go frame by frame as before,
/// intact and within the client's windows. The upstream, a python3-h2 server, answers by path;
/// the client, python3-h2 too (it fails on any flow-control breach), tells whether each
/// response's head and its end came in one read of its socket ("one-read") or not ("later").
/// </summary>
public sealed class Http2NativeFrontWholeResponseTests
{
    /// <summary>
    /// Paths: /plain/N (content-length, N bytes, END_STREAM on the DATA), /grpc/N (one gRPC message
    /// of N bytes, then trailers with grpc-status 0), /pieces/N/K (the N bytes in K sends), /reset/N
    /// (N bytes, then RST_STREAM INTERNAL_ERROR). Each answer leaves in one send as far as the
    /// forwarder's windows allow (the rest as they open), but pieces: a send per piece.
    /// </summary>
    private const string Upstream = """
        import socket, sys, threading
        import h2.config, h2.connection, h2.events, h2.errors
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0)); srv.listen(16)
        print(srv.getsockname()[1], flush=True)
        def body(n): return bytes(i % 251 for i in range(n))
        def serve(sock):
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            c.initiate_connection(); sock.sendall(c.data_to_send())
            pending = {}
            def pump(sid):
                # As the forwarder's windows allow: the rest waits for its WINDOW_UPDATE.
                chunks, trailers, reset, split = pending[sid]
                while chunks:
                    n = min(len(chunks[0]), c.local_flow_control_window(sid), c.max_outbound_frame_size)
                    if n <= 0: return
                    last = n == len(chunks[0]) and len(chunks) == 1 and not trailers and not reset
                    c.send_data(sid, chunks[0][:n], end_stream=last)
                    chunks[0] = chunks[0][n:]
                    if not chunks[0]:
                        chunks.pop(0)
                        if split: sock.sendall(c.data_to_send())
                if trailers: c.send_headers(sid, trailers, end_stream=True)
                if reset: c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                del pending[sid]
            while True:
                try: data = sock.recv(65536)
                except OSError: return
                if not data: return
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.RequestReceived):
                        parts = dict(e.headers)[b':path'].decode().split('/')
                        kind, n, sid = parts[1], int(parts[2]), e.stream_id
                        if kind == 'plain':
                            c.send_headers(sid, [(b':status', b'200'), (b'content-length', str(n).encode())], end_stream=n == 0)
                            if n: pending[sid] = [[body(n)], None, False, False]
                        elif kind == 'grpc':
                            c.send_headers(sid, [(b':status', b'200'), (b'content-type', b'application/grpc')])
                            pending[sid] = [[b'\x00' + n.to_bytes(4, 'big') + body(n)], [(b'grpc-status', b'0')], False, False]
                        elif kind == 'reset':
                            c.send_headers(sid, [(b':status', b'200')])
                            pending[sid] = [[body(n)], None, True, False]
                        else:
                            c.send_headers(sid, [(b':status', b'200')]); sock.sendall(c.data_to_send())
                            k, rest = int(parts[3]), body(n)
                            pending[sid] = [[rest[i * n // k:(i + 1) * n // k] for i in range(k)], None, False, True]
                        if sid in pending: pump(sid)
                    elif isinstance(e, h2.events.WindowUpdated):
                        for sid in list(pending): pump(sid)
                sock.sendall(c.data_to_send())
        while True:
            s, _ = srv.accept()
            threading.Thread(target=serve, args=(s,), daemon=True).start()
        """;

    /// <summary>
    /// argv: port, path, rounds, the stream window it announces. GETs the path rounds times, one
    /// after the other, returning credit only for what it has read. Prints each distinct
    /// "status S LENGTH SHA256 grpc-status G one-read|later" (or "reset CODE") it got, a line each.
    /// </summary>
    private const string Client = """
        import hashlib, socket, sys
        import h2.config, h2.connection, h2.events, h2.settings
        port, path, rounds, window = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        s = socket.create_connection(('127.0.0.1', port)); s.settimeout(60)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        c.local_settings = h2.settings.Settings(client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        c.initiate_connection()
        def head(p): return [(':method', 'GET'), (':scheme', 'http'), (':authority', '127.0.0.1:%d' % port), (':path', p)]
        def exchange(sid):
            status, body, trailers, reads, headed = None, b'', {}, 0, 0
            while True:
                data = s.recv(65536)
                if not data: return 'closed'
                reads += 1
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                        status, headed = dict(e.headers)[b':status'].decode(), reads
                    elif isinstance(e, h2.events.DataReceived):
                        c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                        if e.stream_id == sid: body += e.data
                    elif isinstance(e, h2.events.TrailersReceived): trailers = dict(e.headers)
                    elif isinstance(e, h2.events.StreamReset) and e.stream_id == sid:
                        s.sendall(c.data_to_send()); return 'reset %d' % e.error_code
                    elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                        s.sendall(c.data_to_send())
                        return 'status %s %d %s grpc-status %s %s' % (status, len(body), hashlib.sha256(body).hexdigest(),
                            trailers.get(b'grpc-status', b'-').decode(), 'one-read' if headed == reads else 'later')
                s.sendall(c.data_to_send())
        c.send_headers(1, head('/plain/1'), end_stream=True); s.sendall(c.data_to_send()); exchange(1)
        seen = set()
        for sid in range(3, 3 + 2 * rounds, 2):
            c.send_headers(sid, head(path), end_stream=True); s.sendall(c.data_to_send())
            seen.add(exchange(sid))
        print('\n'.join(sorted(seen)))
        """;

    [Theory]
    [InlineData("epoll")]
    [InlineData("pipes")]
    public Task SmallResponse_ReachesTheClientWhole(string engine) => ExpectAsync(engine, "/plain/100", Plain(100, "one-read"));

    [Fact]
    public Task EmptyResponse_ReachesTheClientWhole() => ExpectAsync("epoll", "/plain/0", Plain(0, "one-read"));

    [Theory]
    [InlineData("epoll")]
    [InlineData("pipes")]
    public Task GrpcResponse_WithTrailers_ReachesTheClientWhole(string engine) => ExpectAsync(engine, "/grpc/1000", Grpc(1000, "one-read"));

    [Fact]
    public Task ResponseAtTheWholeLimit_ArrivesIntact() => ExpectAsync("epoll", "/plain/16384", Plain(16384, null), rounds: 5);

    [Fact]
    public Task ResponseAboveTheClientsWindow_WaitsForItsCredit() => ExpectAsync("epoll", "/plain/100000", Plain(100000, "later"), rounds: 3);

    [Fact]
    public Task SmallWindowClient_GetsTheResponseAsItsWindowOpens() => ExpectAsync("epoll", "/plain/1000", Plain(1000, "later"), window: 100);

    [Fact]
    public Task GrpcResponse_ToASmallWindowClient_KeepsItsTrailers() => ExpectAsync("epoll", "/grpc/1000", Grpc(1000, "later"), window: 100);

    [Theory]
    [InlineData("epoll")]
    [InlineData("pipes")]
    public Task ResponseInPieces_ArrivesIntact(string engine) => ExpectAsync(engine, "/pieces/30000/10", Plain(30000, null), rounds: 5);

    [Fact]
    public Task ResponseAboveTheWholeLimit_ArrivesIntact() => ExpectAsync("epoll", "/plain/20000", Plain(20000, null), rounds: 5);

    [Fact]
    public Task UpstreamResetMidResponse_ResetsTheClientsStream() => ExpectAsync("epoll", "/reset/500", "reset 2");

    private static string Plain(int length, string? delivery) => Line(Body(length), "-", delivery);

    private static string Grpc(int length, string? delivery) => Line([0, .. BitConverterBigEndian(length), .. Body(length)], "0", delivery);

    private static byte[] BitConverterBigEndian(int value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    private static byte[] Body(int length) => Enumerable.Range(0, length).Select(i => (byte)(i % 251)).ToArray();

    /// <summary>The client's line for a response of <paramref name="body"/>; without <paramref name="delivery"/>, either is fine (a send may or may not split).</summary>
    private static string Line(byte[] body, string grpcStatus, string? delivery)
        => $"status 200 {body.Length} {Convert.ToHexStringLower(SHA256.HashData(body))} grpc-status {grpcStatus}{(delivery is null ? string.Empty : " " + delivery)}";

    /// <summary><paramref name="rounds"/> GETs of <paramref name="path"/> through a native front, every answer as <paramref name="expected"/> (a prefix when it names no delivery).</summary>
    private static async Task ExpectAsync(string engine, string path, string expected, int rounds = 20, int window = 65535)
    {
        await using var upstream = await Http2PeerServer.StartPythonAsync(Upstream, "-");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", upstream.Port), "http2: native", engine));

        var (exit, output, error) = await PeerProcess.RunAsync(
            "/usr/bin/python3",
            ["-c", Client, forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture), path, rounds.ToString(CultureInfo.InvariantCulture), window.ToString(CultureInfo.InvariantCulture)],
            timeout: TimeSpan.FromSeconds(90));

        Assert.True(exit == 0, error);
        var lines = output.Trim().Split('\n');
        var all = new StringBuilder().AppendJoin(" | ", lines).ToString();
        Assert.True(lines.All(line => line.StartsWith(expected, StringComparison.Ordinal)) && lines.Length is 1 or 2, $"expected every answer as '{expected}', got: {all}");
        if (expected.EndsWith("one-read", StringComparison.Ordinal) || expected.EndsWith("later", StringComparison.Ordinal) || expected.StartsWith("reset", StringComparison.Ordinal))
        {
            Assert.Single(lines);
        }
    }
}
