using System.Net;
using Forwarder.Bench.Backends;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;
using Forwarder.Bench.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Load;

/// <summary>
/// The h2c load client against independent servers (nghttpd; a python3-h2 server that pings,
/// answers 502 and sends GOAWAY) and against the built-in h2c backend, closed and open loop.
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class H2LoadClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A python3-h2 server. On each connection it answers the first request only once its PING
    /// has been acknowledged, and after the third answer sends GOAWAY naming that stream as the
    /// last; /502 is answered 502 (a literal :status, Huffman-coded by hpack); /refuse gets a GOAWAY
    /// naming the stream before it, so it was not processed. It prints "connection" per accept.
    /// </summary>
    private const string PythonServer = """
        import socket, sys, threading
        import h2.connection, h2.config, h2.events
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0)); srv.listen(64)
        print(srv.getsockname()[1], flush=True)
        def respond(c, sid, status):
            c.send_headers(sid, [(b':status', status), (b'content-length', b'2')])
            c.send_data(sid, b'ok', end_stream=True)
        def serve(sock):
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            c.initiate_connection(); sock.sendall(c.data_to_send())
            held = []; answered = [0]; pinged = False
            def answer(sid):
                respond(c, sid, b'200'); answered[0] += 1
                if answered[0] == 3: c.close_connection(last_stream_id=sid)
            while True:
                try: data = sock.recv(65536)
                except OSError: return
                if not data: return
                try: events = c.receive_data(data)
                except Exception:
                    # Frames after our GOAWAY: read until the client closes, so nothing we sent is lost to a reset.
                    while sock.recv(65536): pass
                    return
                for e in events:
                    if isinstance(e, h2.events.RequestReceived):
                        path = dict(e.headers)[b':path']
                        if path == b'/refuse': c.close_connection(last_stream_id=max(e.stream_id - 2, 0))
                        elif path == b'/502': respond(c, e.stream_id, b'502')
                        elif not pinged:
                            pinged = True; held.append(e.stream_id); c.ping(b'12345678')
                        else: answer(e.stream_id)
                    elif isinstance(e, h2.events.PingAckReceived):
                        for sid in held: answer(sid)
                        held.clear()
                sock.sendall(c.data_to_send())
        while True:
            s, _ = srv.accept()
            print('connection', flush=True)
            threading.Thread(target=serve, args=(s,), daemon=True).start()
        """;

    [Theory]
    [InlineData("88", 200)]
    [InlineData("8d", 404)]
    [InlineData("2088", 200)] // a dynamic table size update first
    [InlineData("0803353032", 502)] // literal without indexing, plain value
    [InlineData("48826c02", 502)] // literal with incremental indexing, Huffman value (hpack's own encoding)
    [InlineData("4883684fff", 429)] // Huffman with 7 bits of padding
    [InlineData("be", 0)] // a dynamic table entry: the client announced none
    [InlineData("82", 0)] // :method, not :status
    [InlineData("4883684ffe", 0)] // padding that is not all ones
    public void StatusReader_ReadsStaticIndicesAndLiterals(string hex, int status)
        => Assert.Equal(status, H2StatusReader.Read(Convert.FromHexString(hex)));

    [Fact]
    public async Task AgainstNghttpd_ClosedLoop_EveryResponseCounted_AndA404IsAnError()
    {
        var root = Directory.CreateTempSubdirectory("h2-load-nghttpd-");
        await File.WriteAllTextAsync(Path.Combine(root.FullName, "index.html"), "hello from nghttpd");
        var port = PeerProcessRunner.FreePort();
        await using var nghttpd = PeerProcessRunner.Start("nghttpd", "--no-tls", "-d", root.FullName, port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await nghttpd.WaitForPortAsync(port);

        var ok = await RunAsync(new Uri($"http://127.0.0.1:{port}/index.html"), connections: 2, rate: null);
        var missing = await RunAsync(new Uri($"http://127.0.0.1:{port}/missing"), connections: 1, rate: null);

        Assert.True(ok.Ok > 50, $"{ok.Ok} responses");
        Assert.Equal(0, ok.Failed);
        Assert.Equal(ok.Ok, ok.StatusCodes[200]);
        Assert.Equal(0, missing.Ok);
        Assert.True(missing.Failed > 10, $"{missing.Failed} failed");
        Assert.Equal(missing.Failed, missing.StatusCodes[404]);
        root.Delete(recursive: true);
    }

    [Fact]
    public async Task AgainstPythonH2_AcksPings_ReadsLiteralStatuses_AndMovesOnAfterGoAway()
    {
        await using var server = PeerProcessRunner.Start("/usr/bin/python3", "-c", PythonServer);
        var port = int.Parse(await server.Process.StandardOutput.ReadLineAsync().WaitAsync(Deadline) ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        var url = new Uri($"http://127.0.0.1:{port}/");

        List<Response> responses = [];
        await using (var client = new H2LoadClient(url))
        {
            // Connections of three: ping-held, then two; the fourth request finds the GOAWAY and goes on a new connection.
            for (var i = 0; i < 7; i++)
            {
                responses.Add(await client.ExchangeAsync().AsTask().WaitAsync(Deadline));
            }
        }

        await using (var client = new H2LoadClient(new Uri(url, "/502")))
        {
            responses.Add(await client.ExchangeAsync().AsTask().WaitAsync(Deadline));
        }

        Response refused;
        Response afterRefusal;
        await using (var client = new H2LoadClient(url))
        {
            responses.Add(await client.ExchangeAsync().AsTask().WaitAsync(Deadline));
            await using var other = new H2LoadClient(new Uri(url, "/refuse"));
            refused = await other.ExchangeAsync().AsTask().WaitAsync(Deadline);
            afterRefusal = await client.ExchangeAsync().AsTask().WaitAsync(Deadline);
        }

        await server.StopAsync();
        var connections = (await server.Process.StandardOutput.ReadToEndAsync()).Split('\n').Count(l => l == "connection");
        output.WriteLine(string.Join('\n', responses.Select(r => $"{r.IsOk} {r.StatusCode} {r.Message}")));
        output.WriteLine($"refused: {refused.IsOk} {refused.StatusCode} {refused.Message}; connections {connections}");

        Assert.All(responses[..7], r => Assert.Equal((true, (int?)200), (r.IsOk, r.StatusCode)));
        Assert.Equal((false, (int?)502, "status 5xx"), (responses[7].IsOk, responses[7].StatusCode, responses[7].Message));
        Assert.Equal((true, (int?)200), (responses[8].IsOk, responses[8].StatusCode));

        // The refused request went again on a new connection, where the same thing happened: it fails, once.
        Assert.Equal((false, "GOAWAY before the request was processed"), (refused.IsOk, refused.Message));
        Assert.True(afterRefusal.IsOk, afterRefusal.Message);

        // 7 requests: 3 + 3 + 1; then one for /502, one for the next client, two for the refused request.
        Assert.Equal(3 + 1 + 1 + 2, connections);
    }

    [Fact]
    public async Task AgainstTheBuiltInBackend_OpenLoopAchievesItsRate()
    {
        await using var backend = new H2cHelloServer(new IPEndPoint(IPAddress.Loopback, 0));

        var stats = await RunAsync(new Uri($"http://{backend.EndPoint}/"), connections: 8, rate: 300, warmup: TimeSpan.FromSeconds(1));

        Assert.Equal(0, stats.Failed);
        Assert.True(stats.RateAchieved, $"{stats.RequestsPerSecond} req/s");
        Assert.Equal(stats.Ok, stats.StatusCodes[200]);
        Assert.True(backend.Requests >= stats.Ok, $"{backend.Requests} answered, {stats.Ok} counted");
    }

    /// <param name="warmup">Open loop: the first connections and the JIT's first passes would otherwise eat into the rate on a loaded machine.</param>
    private async Task<ScenarioStats> RunAsync(Uri url, int connections, double? rate, TimeSpan warmup = default)
    {
        var options = new LoadOptions(url, null, 64, rate, null, connections, TimeSpan.FromSeconds(2), warmup, 1, TimeSpan.FromSeconds(10), null, null, Http2: true);
        var console = new StringWriter();
        var stats = await LoadCommand.RunAsync(options, console, CancellationToken.None);
        output.WriteLine(console.ToString());
        return stats;
    }
}
