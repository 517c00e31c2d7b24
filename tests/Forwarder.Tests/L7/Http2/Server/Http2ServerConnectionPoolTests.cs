using Forwarder.L7.Http2.Server;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7.Http2.Server;

/// <summary>
/// What a connection keeps in its stream pool after a burst of HPACK-amplified requests (a 4 KB
/// field put in the dynamic table once, then named by one byte seven times per request): no
/// pooled stream keeps a header buffer past <see cref="Http2HeaderFields.RetainedBytes"/>, and an
/// idle connection whose pool expired keeps only a few streams.
/// </summary>
public sealed class Http2ServerConnectionPoolTests
{
    private const int Burst = 50;

    /// <summary>argv: port count. Sends count amplified GETs at once, exits once every response ended.</summary>
    private const string Client = """
        import socket, sys, hpack
        from hyperframe.frame import *
        port, count = int(sys.argv[1]), int(sys.argv[2])
        s = socket.create_connection(('127.0.0.1', port)); s.settimeout(30)
        enc = hpack.Encoder()
        fields = [(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/')] + [('big', 'v' * 3900)] * 7
        s.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SettingsFrame(0).serialize())
        s.sendall(b''.join(HeadersFrame(2 * i + 1, enc.encode(fields), flags=['END_HEADERS', 'END_STREAM']).serialize() for i in range(count)))
        buf = b''; ended = 0
        while ended < count:
            chunk = s.recv(65536)
            if not chunk: break
            buf += chunk
            while len(buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length: break
                f.parse_body(memoryview(buf[9:9 + length])); buf = buf[9 + length:]
                if isinstance(f, SettingsFrame) and 'ACK' not in f.flags: s.sendall(SettingsFrame(0, flags=['ACK']).serialize())
                if 'END_STREAM' in f.flags: ended += 1
                if isinstance(f, (RstStreamFrame, GoAwayFrame)): print('unexpected', f); sys.exit(1)
        print('ended', ended)
        """;

    [Fact]
    public async Task AmplifiedBurst_PooledStreamsKeepNoLargeHeaderBuffer()
    {
        await using var server = await Http2TestServer.StartAsync();

        await RunBurstAsync(server);

        // The pool is kept for the next burst (the expiry has not passed), without the burst's header bytes.
        var connection = Assert.Single(server.Connections);
        await Eventually.TrueAsync(() => server.Handler.Completed == Burst && !server.Ended.IsEmpty, () => $"{server.Handler.Completed} of {Burst} handled");
        Assert.True(connection.PooledStreams > 0 && connection.PooledHeaderBytes <= connection.PooledStreams * 1024, $"{connection.PooledStreams} pooled streams hold {connection.PooledHeaderBytes} header bytes");
    }

    [Fact]
    public async Task IdleAfterTheExpiry_ThePoolIsTrimmed()
    {
        await using var server = await Http2TestServer.StartAsync(new Http2ServerOptions { StreamPoolExpiry = TimeSpan.Zero });

        await RunBurstAsync(server);

        // Every stream was handled and the client has gone: every stream was recycled (or dropped) by now.
        var connection = Assert.Single(server.Connections);
        await Eventually.TrueAsync(() => server.Handler.Completed == Burst && !server.Ended.IsEmpty, () => $"{server.Handler.Completed} of {Burst} handled");
        Assert.InRange(connection.PooledStreams, 1, 4);
    }

    [Fact]
    public async Task ConnectionStaysIdle_ThePoolIsTrimmedOnceTheExpiryPasses()
    {
        // The expiry has not passed when the burst's last stream recycles: only the idle timer can trim the pool.
        await using var server = await Http2TestServer.StartAsync(new Http2ServerOptions { StreamPoolExpiry = TimeSpan.FromSeconds(3) });
        using var client = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { ArgumentList = { "-c", Client + "\nsys.stdout.flush(); sys.stdin.read()\n", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Burst.ToString(System.Globalization.CultureInfo.InvariantCulture) }, RedirectStandardInput = true, RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal($"ended {Burst}", await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90)));
            var connection = Assert.Single(server.Connections);
            await Eventually.TrueAsync(() => connection.PooledStreams <= 4, () => $"{connection.PooledStreams} streams pooled on the idle connection");
            Assert.Empty(server.Ended);
        }
        finally
        {
            client.Kill();
            await client.WaitForExitAsync();
        }
    }

    private static async Task RunBurstAsync(Http2TestServer server)
    {
        var (exit, output, error) = await PeerProcess.RunAsync(
            "/usr/bin/python3",
            ["-c", Client, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Burst.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            timeout: TimeSpan.FromSeconds(90));
        Assert.True(exit == 0 && output.Trim() == $"ended {Burst}", output + error);
    }
}
