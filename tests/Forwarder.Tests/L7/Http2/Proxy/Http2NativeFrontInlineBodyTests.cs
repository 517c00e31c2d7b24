using System.Globalization;
using System.Security.Cryptography;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Client;
using Forwarder.Tests.L7.Http2.Server;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// A request body that arrives in the same read as its HEADERS goes upstream with them: pumped at
/// the read's end, the body and its END_STREAM leave in the same write as the head, when the
/// upstream's windows cover it. The upstream, a python3-h2 server, tells whether the stream's
/// HEADERS and its END_STREAM came in one read of its socket ("one-read") or not ("later").
/// </summary>
public sealed class Http2NativeFrontInlineBodyTests
{
    /// <summary>
    /// Requests per case: a body pumped apart from its head may still reach a slow upstream's
    /// socket before it reads, so one request could pass by luck; twenty in a row do not.
    /// </summary>
    private const string Rounds = "20";

    /// <summary>
    /// argv: the stream window it announces (SETTINGS_INITIAL_WINDOW_SIZE). Answers each request
    /// with "LENGTH SHA256 one-read|later" for the body it got; for a gRPC call as one gRPC
    /// message, then grpc-status 0.
    /// </summary>
    private const string Upstream = """
        import hashlib, socket, sys, threading
        import h2.config, h2.connection, h2.events, h2.settings
        window = int(sys.argv[1])
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0)); srv.listen(16)
        print(srv.getsockname()[1], flush=True)
        def serve(sock):
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            c.local_settings = h2.settings.Settings(client=False, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
            c.initiate_connection(); sock.sendall(c.data_to_send())
            reads, opened, bodies, grpc = 0, {}, {}, {}
            while True:
                try: data = sock.recv(65536)
                except OSError: return
                if not data: return
                reads += 1
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.RequestReceived):
                        opened[e.stream_id], bodies[e.stream_id] = reads, b''
                        grpc[e.stream_id] = dict(e.headers).get(b'content-type', b'').startswith(b'application/grpc')
                    elif isinstance(e, h2.events.DataReceived):
                        bodies[e.stream_id] += e.data
                        c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    elif isinstance(e, h2.events.StreamEnded):
                        sid, body = e.stream_id, bodies.pop(e.stream_id)
                        report = ('%d %s %s' % (len(body), hashlib.sha256(body).hexdigest(), 'one-read' if opened.pop(sid) == reads else 'later')).encode()
                        if grpc.pop(sid):
                            c.send_headers(sid, [(b':status', b'200'), (b'content-type', b'application/grpc')])
                            c.send_data(sid, b'\x00' + len(report).to_bytes(4, 'big') + report)
                            c.send_headers(sid, [(b'grpc-status', b'0')], end_stream=True)
                        else:
                            c.send_headers(sid, [(b':status', b'200'), (b'content-length', str(len(report)).encode())])
                            c.send_data(sid, report, end_stream=True)
                sock.sendall(c.data_to_send())
        while True:
            s, _ = srv.accept()
            threading.Thread(target=serve, args=(s,), daemon=True).start()
        """;

    /// <summary>
    /// argv: port, kind (get, post, grpc), body length, rounds. First a GET, so the upstream
    /// connection is open (a request that dials one waits for it, out of its read); then the
    /// request, rounds times one after the other, its HEADERS and DATA (END_STREAM) in one send
    /// each time. Prints each distinct "status S REPORT grpc-status G" it got, a line each.
    /// </summary>
    private const string Client = """
        import socket, sys
        import h2.config, h2.connection, h2.events
        port, kind, size, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        s = socket.create_connection(('127.0.0.1', port)); s.settimeout(60)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        c.initiate_connection()
        def head(method, path): return [(':method', method), (':scheme', 'http'), (':authority', '127.0.0.1:%d' % port), (':path', path)]
        def exchange(sid):
            status, body, trailers = None, b'', {}
            while True:
                data = s.recv(65536)
                if not data: print('closed'); sys.exit(0)
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid: status = dict(e.headers)[b':status'].decode()
                    elif isinstance(e, h2.events.DataReceived):
                        c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                        if e.stream_id == sid: body += e.data
                    elif isinstance(e, h2.events.TrailersReceived): trailers = dict(e.headers)
                    elif isinstance(e, h2.events.StreamReset): print('reset %d' % e.error_code); sys.exit(0)
                    elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                        s.sendall(c.data_to_send()); return status, body, trailers
                s.sendall(c.data_to_send())
        c.send_headers(1, head('GET', '/warm'), end_stream=True); s.sendall(c.data_to_send()); exchange(1)
        payload = bytes(i % 251 for i in range(size))
        if kind == 'grpc': payload = b'\x00' + (size - 5).to_bytes(4, 'big') + payload[:size - 5]
        seen = set()
        for sid in range(3, 3 + 2 * rounds, 2):
            if kind == 'get':
                c.send_headers(sid, head('GET', '/get'), end_stream=True)
            elif kind == 'post':
                c.send_headers(sid, head('POST', '/upload') + [('content-length', str(size))]); c.send_data(sid, payload, end_stream=True)
            else:
                c.send_headers(sid, head('POST', '/echo.Echo/Unary') + [('content-type', 'application/grpc'), ('te', 'trailers')]); c.send_data(sid, payload, end_stream=True)
            s.sendall(c.data_to_send())
            status, body, trailers = exchange(sid)
            if kind == 'grpc': body = body[5:]
            seen.add('status %s %s grpc-status %s' % (status, body.decode(), trailers.get(b'grpc-status', b'-').decode()))
        print('\n'.join(sorted(seen)))
        """;

    [Theory]
    [InlineData("epoll")]
    [InlineData("pipes")]
    public Task GrpcUnary_ItsMessageGoesWithTheHead(string engine) => ExpectAsync(engine, 65535, "grpc", 1005, "one-read", "0");

    [Theory]
    [InlineData("epoll")]
    [InlineData("pipes")]
    public Task SmallPost_ItsBodyGoesWithTheHead(string engine) => ExpectAsync(engine, 65535, "post", 100, "one-read");

    [Fact]
    public Task Body_ExactlyTheUpstreamsStreamWindow_GoesWithTheHead() => ExpectAsync("epoll", 1000, "post", 1000, "one-read");

    [Theory]
    [InlineData("epoll")]
    [InlineData("pipes")]
    public Task Body_LargerThanTheUpstreamsStreamWindow_IsPumpedAsTheWindowOpens(string engine) => ExpectAsync(engine, 1000, "post", 2500, "later");

    [Fact]
    public Task GrpcUnary_LargerThanTheUpstreamsStreamWindow_IsPumpedAsTheWindowOpens() => ExpectAsync("epoll", 1000, "grpc", 1001, "later", "0");

    [Fact]
    public Task Get_EndStreamOnItsHeaders_GoesWithoutABody() => ExpectAsync("epoll", 65535, "get", 0, "one-read");

    /// <summary>One request of <paramref name="kind"/> with a body of <paramref name="size"/> bytes through a native front to an upstream announcing <paramref name="window"/>.</summary>
    private static async Task ExpectAsync(string engine, int window, string kind, int size, string delivery, string grpcStatus = "-")
    {
        await using var upstream = await Http2PeerServer.StartPythonAsync(Upstream, window.ToString(CultureInfo.InvariantCulture));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", upstream.Port), "http2: native", engine));

        var (exit, output, error) = await PeerProcess.RunAsync(
            "/usr/bin/python3",
            ["-c", Client, forwarder.EndPoint("web").Port.ToString(CultureInfo.InvariantCulture), kind, size.ToString(CultureInfo.InvariantCulture), Rounds],
            timeout: TimeSpan.FromSeconds(90));

        Assert.True(exit == 0, error);
        var payload = Enumerable.Range(0, size).Select(i => (byte)(i % 251)).ToArray();
        byte[] body = kind switch
        {
            "get" => [],
            "grpc" => [0, 0, 0, (byte)((size - 5) >> 8), (byte)(size - 5), .. payload[..(size - 5)]],
            _ => payload,
        };
        Assert.Equal($"status 200 {body.Length} {Convert.ToHexStringLower(SHA256.HashData(body))} {delivery} grpc-status {grpcStatus}", output.Trim());
    }
}
