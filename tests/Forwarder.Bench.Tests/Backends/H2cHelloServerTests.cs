using System.Net;
using Forwarder.Bench.Backends;
using Forwarder.Bench.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Backends;

/// <summary>The built-in h2c backend against independent clients: h2load (multiplexed), nghttp (a request body past the first window) and python3-h2 (every frame checked).</summary>
public sealed class H2cHelloServerTests(ITestOutputHelper output)
{
    /// <summary>
    /// A python3-h2 client: a POST whose 200 KB body goes in DATA frames as the windows allow and
    /// ends with trailers, a PING, then a GET; prints the responses' headers and bodies and whether
    /// the PING was acknowledged.
    /// </summary>
    private const string PythonClient = """
        import socket, sys
        import h2.connection, h2.config, h2.events
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding='ascii'))
        c.initiate_connection(); s.sendall(c.data_to_send())
        body = b'x' * 200000
        c.send_headers(1, [(':method', 'POST'), (':scheme', 'http'), (':authority', 'peer'), (':path', '/upload')])
        c.ping(b'abcdefgh')
        sent = 0; ended = {}; data = {}; headers = {}; acked = False; get_sent = False
        while len(ended) < 2:
            while sent < len(body):
                n = min(c.local_flow_control_window(1), c.max_outbound_frame_size, len(body) - sent)
                if n <= 0: break
                c.send_data(1, body[sent:sent + n]); sent += n
            if sent == len(body) and 1 not in headers and not get_sent:
                c.send_headers(1, [('x-checksum', 'done')], end_stream=True)
                c.send_headers(3, [(':method', 'GET'), (':scheme', 'http'), (':authority', 'peer'), (':path', '/')], end_stream=True)
                get_sent = True
            s.sendall(c.data_to_send())
            chunk = s.recv(65536)
            if not chunk: break
            for e in c.receive_data(chunk):
                if isinstance(e, h2.events.ResponseReceived): headers[e.stream_id] = e.headers
                elif isinstance(e, h2.events.DataReceived):
                    data[e.stream_id] = data.get(e.stream_id, b'') + e.data
                    c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.StreamEnded): ended[e.stream_id] = True
                elif isinstance(e, h2.events.PingAckReceived): acked = e.ping_data == b'abcdefgh'
            s.sendall(c.data_to_send())
        for sid in (1, 3):
            print(sid, headers.get(sid), data.get(sid, b'').decode())
        print('ping acked', acked)
        """;

    [Fact]
    public async Task H2load_MultiplexedRequests_AllAnswered200()
    {
        await using var server = new H2cHelloServer(new IPEndPoint(IPAddress.Loopback, 0));

        var (exitCode, text) = await PeerProcessRunner.RunAsync("h2load", "-n", "2000", "-c", "4", "-m", "10", $"http://{server.EndPoint}/");
        output.WriteLine(text);

        Assert.Equal(0, exitCode);
        Assert.Contains("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout", text, StringComparison.Ordinal);
        Assert.Contains("status codes: 2000 2xx", text, StringComparison.Ordinal);
        Assert.Equal(2000, server.Requests);
    }

    [Fact]
    public async Task Nghttp_PostPastTheFirstWindow_IsAnsweredOnceTheBodyEnds()
    {
        await using var server = new H2cHelloServer(new IPEndPoint(IPAddress.Loopback, 0));
        var body = Path.GetTempFileName();
        await File.WriteAllBytesAsync(body, new byte[300_000]);

        var (exitCode, text) = await PeerProcessRunner.RunAsync("nghttp", "-v", "-t", "30", "-d", body, $"http://{server.EndPoint}/upload");
        File.Delete(body);
        output.WriteLine(text);

        Assert.Equal(0, exitCode);
        Assert.Contains(":status: 200", text, StringComparison.Ordinal);
        Assert.Contains("content-type: text/plain", text, StringComparison.Ordinal);
        Assert.Contains("Hello, World!", text, StringComparison.Ordinal);
        Assert.Contains("recv WINDOW_UPDATE frame", text, StringComparison.Ordinal);
        Assert.Equal(1, server.Requests);
    }

    [Fact]
    public async Task PythonH2_BodyWithTrailers_PingAndGet_EachAnsweredInFull()
    {
        await using var server = new H2cHelloServer(new IPEndPoint(IPAddress.Loopback, 0));

        var (exitCode, text) = await PeerProcessRunner.RunAsync("/usr/bin/python3", "-c", PythonClient, server.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        output.WriteLine(text);

        Assert.Equal(0, exitCode);
        const string Headers = "[(':status', '200'), ('content-length', '13'), ('content-type', 'text/plain')]";
        Assert.Contains($"1 {Headers} Hello, World!", text, StringComparison.Ordinal);
        Assert.Contains($"3 {Headers} Hello, World!", text, StringComparison.Ordinal);
        Assert.Contains("ping acked True", text, StringComparison.Ordinal);
    }
}
