using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7.Http2.Client;

/// <summary>An independent HTTP/2 server in its own process on a loopback port: nghttpd, a python3-h2 script, or a grpcio server.</summary>
internal sealed class Http2PeerServer : IAsyncDisposable
{
    /// <summary>
    /// A python3-h2 server whose behaviour the request path picks: /ok answers "ok"; /resets
    /// answers the RST_STREAM codes it has received; /rst/N resets the stream with code N;
    /// /close drops the connection without a word; /hang never answers; /refuse-twice resets the
    /// first two such streams (on any connection) with REFUSED_STREAM and answers "third". Modes (argv[1]):
    /// "plain"; "goaway" (the first connection waits for two /goaway requests, sends GOAWAY with the
    /// first as last stream, then answers only that one; later connections answer everything, "fresh");
    /// "no-settings-ack" (sends its SETTINGS, never acknowledges the client's, answers nothing);
    /// "goaway-first" (sends GOAWAY NO_ERROR, last stream 0, before any SETTINGS, then nothing);
    /// "zero-streams" (SETTINGS_MAX_CONCURRENT_STREAMS 0, acknowledges the client's SETTINGS, then nothing).
    /// </summary>
    private const string H2Script = """
        import socket, sys, threading
        import h2.connection, h2.config, h2.events
        mode = sys.argv[1]
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0)); srv.listen(64)
        print(srv.getsockname()[1], flush=True)
        resets = []
        count = [0]
        refusals = [0]
        lock = threading.Lock()
        def answer(c, sid, body):
            c.send_headers(sid, [(b':status', b'200'), (b'content-length', str(len(body)).encode())])
            c.send_data(sid, body, end_stream=True)
        def serve(sock, index):
            if mode == 'zero-streams':
                sock.sendall(bytes.fromhex('000006040000000000000300000000'))
                acked = False
                while sock.recv(65536):
                    if not acked: sock.sendall(bytes.fromhex('000000040100000000')); acked = True
                return
            if mode == 'goaway-first':
                sock.sendall(bytes.fromhex('0000080700000000000000000000000000'))
                while sock.recv(65536): pass
                return
            if mode == 'no-settings-ack':
                sock.sendall(bytes.fromhex('000000040000000000'))
                while sock.recv(65536): pass
                return
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            c.initiate_connection(); sock.sendall(c.data_to_send())
            held = []
            while True:
                try: data = sock.recv(65536)
                except OSError: return
                if not data: return
                try: events = c.receive_data(data)
                except Exception as e:
                    print('peer error', e, file=sys.stderr, flush=True); return
                for e in events:
                    if isinstance(e, h2.events.RequestReceived):
                        path = dict(e.headers)[b':path'].decode()
                        sid = e.stream_id
                        if path == '/ok': answer(c, sid, b'ok')
                        elif path == '/resets':
                            with lock: answer(c, sid, ','.join(str(int(r)) for r in resets).encode())
                        elif path.startswith('/rst/'): c.reset_stream(sid, int(path[5:]))
                        elif path == '/refuse-twice':
                            with lock:
                                refusals[0] += 1; n = refusals[0]
                            if n <= 2: c.reset_stream(sid, 7)
                            else: answer(c, sid, b'third')
                        elif path == '/close':
                            sock.shutdown(socket.SHUT_RDWR); sock.close(); return
                        elif path == '/hang': pass
                        elif path == '/goaway':
                            if mode == 'goaway' and index == 1:
                                held.append(sid)
                                if len(held) == 2:
                                    # GOAWAY written raw, so the h2 state machine still answers the stream it keeps.
                                    sock.sendall(c.data_to_send() + bytes.fromhex('000008070000000000') + held[0].to_bytes(4, 'big') + bytes(4))
                                    answer(c, held[0], b'first')
                            else: answer(c, sid, b'fresh')
                    elif isinstance(e, h2.events.StreamReset):
                        with lock: resets.append(e.error_code)
                    elif isinstance(e, h2.events.DataReceived):
                        c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                try: sock.sendall(c.data_to_send())
                except OSError: return
        while True:
            s, _ = srv.accept()
            with lock:
                count[0] += 1; n = count[0]
            threading.Thread(target=serve, args=(s, n), daemon=True).start()
        """;

    /// <summary>
    /// A grpcio server with one method, /test.Echo/Unary, taking raw bytes: "fail" ends with
    /// NOT_FOUND "no such widget"; anything else comes back as "echo:" + it, with trailer x-trailer: t1.
    /// </summary>
    private const string GrpcScript = """
        import grpc, sys
        from concurrent import futures
        def unary(request, context):
            if request == b'fail': context.abort(grpc.StatusCode.NOT_FOUND, 'no such widget')
            context.set_trailing_metadata((('x-trailer', 't1'),))
            return b'echo:' + request
        handler = grpc.method_handlers_generic_handler('test.Echo', {'Unary': grpc.unary_unary_rpc_method_handler(unary)})
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port('127.0.0.1:0')
        server.start()
        print(port, flush=True)
        server.wait_for_termination()
        """;

    /// <summary>
    /// A python3-h2 server that answers each request with the header block it came in, as sent
    /// (hex, read off the wire with hyperframe), then the fields python3-hpack decoded from it,
    /// "name: value" a line. Blocks must fit one HEADERS frame.
    /// </summary>
    private const string BlockEchoScript = """
        import socket, sys, threading
        import h2.connection, h2.config, h2.events
        from hyperframe.frame import Frame, HeadersFrame
        srv = socket.socket()
        srv.bind(('127.0.0.1', 0)); srv.listen(8)
        print(srv.getsockname()[1], flush=True)
        def serve(sock):
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            c.initiate_connection(); sock.sendall(c.data_to_send())
            raw, preface, blocks = b'', True, []
            while True:
                data = sock.recv(65536)
                if not data: return
                raw += data
                if preface and len(raw) >= 24: raw, preface = raw[24:], False
                while not preface and len(raw) >= 9:
                    f, length = Frame.parse_frame_header(memoryview(raw[:9]))
                    if len(raw) < 9 + length: break
                    if isinstance(f, HeadersFrame):
                        f.parse_body(memoryview(raw[9:9 + length])); blocks.append(bytes(f.data))
                    raw = raw[9 + length:]
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.RequestReceived):
                        body = (blocks.pop(0).hex() + '\n' + '\n'.join(n.decode() + ': ' + v.decode() for n, v in e.headers)).encode()
                        c.send_headers(e.stream_id, [(b':status', b'200'), (b'content-length', str(len(body)).encode())])
                        c.send_data(e.stream_id, body, end_stream=True)
                sock.sendall(c.data_to_send())
        while True:
            s, _ = srv.accept()
            threading.Thread(target=serve, args=(s,), daemon=True).start()
        """;

    private readonly Process _process;

    private Http2PeerServer(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    public static Task<Http2PeerServer> StartH2Async(string mode) => StartPythonAsync(H2Script, mode);

    public static Task<Http2PeerServer> StartGrpcAsync() => StartPythonAsync(GrpcScript, "grpc");

    public static Task<Http2PeerServer> StartBlockEchoAsync() => StartPythonAsync(BlockEchoScript, "echo");

    /// <summary>nghttpd serving <paramref name="htdocs"/> on a free port (h2c, or TLS with ALPN h2 given a key and certificate).</summary>
    public static async Task<Http2PeerServer> StartNghttpdAsync(string htdocs, string extraArguments, string? keyFile = null, string? certFile = null)
    {
        var port = FreePort();
        var tls = keyFile is null ? "--no-tls" : string.Empty;
        var start = new ProcessStartInfo("/usr/sbin/nghttpd", $"-a 127.0.0.1 -d {htdocs} {tls} {extraArguments} {port} {keyFile} {certFile}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new Http2PeerServer(process, port);
        await Eventually.TrueAsync(() => Accepts(port) || process.HasExited, "nghttpd listens");
        Assert.False(process.HasExited, "nghttpd exited at start");
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
    }

    /// <summary>A python script (printing its port first) as the server; <paramref name="mode"/> is its argv[1].</summary>
    internal static async Task<Http2PeerServer> StartPythonAsync(string script, string mode)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(mode);
        start.Environment.Remove("http_proxy");
        start.Environment.Remove("https_proxy");
        var process = Process.Start(start)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(int.TryParse(line, out var port), $"the python peer printed '{line}' instead of its port");
        return new Http2PeerServer(process, port);
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static bool Accepts(int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
