using System.Net;
using System.Security.Cryptography;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>Our listener against our client, with windows far smaller than the data, and against ngtcp2's example client.</summary>
public sealed class QuicListenerTests : IDisposable
{
    private const string NodeName = "node-b.mesh.test";
    private const string Alpn = "forwarder-test";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(NodeName);

    private QuicServerOptions ServerOptions(string alpn = Alpn) => new()
    {
        Alpn = alpn,
        CertificateFile = _pki.ServerCertificateFile,
        KeyFile = _pki.ServerKeyFile,
        StreamWindow = 64 * 1024,
        ConnectionWindow = 128 * 1024,
    };

    private QuicClientOptions ClientOptions(string alpn = Alpn) => new()
    {
        Alpn = alpn,
        ServerName = NodeName,
        CaFile = _pki.CaFile,
        StreamWindow = 64 * 1024,
        ConnectionWindow = 128 * 1024,
    };

    [Fact]
    public async Task Accept_ClientStreamEchoedBack_BothDirectionsPastTheWindows()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);
        var payload = RandomNumberGenerator.GetBytes(4 * 1024 * 1024);

        var echo = Task.Run(async () =>
        {
            var stream = await server.AcceptStreamAsync(cts.Token);
            var buffer = new byte[32 * 1024];
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, n), cts.Token);
            }

            stream.CompleteWrites();
        }, cts.Token);
        var stream = await client.OpenStreamAsync(cts.Token);
        var send = Task.Run(async () =>
        {
            for (var offset = 0; offset < payload.Length; offset += 100_000)
            {
                await stream.WriteAsync(payload.AsMemory(offset, Math.Min(100_000, payload.Length - offset)), cts.Token);
            }

            stream.CompleteWrites();
        }, cts.Token);
        var echoed = await ReadToEndAsync(stream, cts.Token);
        await Task.WhenAll(send, echo);

        Assert.Equal(payload.Length, echoed.Length);
        Assert.True(payload.AsSpan().SequenceEqual(echoed), "echoed bytes differ");
    }

    [Fact]
    public async Task Accept_ServerOpensAStream_ClientAcceptsIt()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);

        var fromServer = await server.OpenStreamAsync(cts.Token);
        await fromServer.WriteAsync("hello from the server"u8.ToArray(), cts.Token);
        fromServer.CompleteWrites();
        var accepted = await client.AcceptStreamAsync(cts.Token);

        Assert.Equal("hello from the server"u8.ToArray(), await ReadToEndAsync(accepted, cts.Token));
    }

    [Fact]
    public async Task Abort_StreamWithUnsentData_ConnectionCarriesOn()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);
        var stuck = await client.OpenStreamAsync(cts.Token);
        // Buffered (under StreamSendBuffer) but mostly unsent: the server's 64 KiB window holds it back.
        await stuck.WriteAsync(new byte[200 * 1024], cts.Token);
        await server.AcceptStreamAsync(cts.Token);

        stuck.Abort();

        await Assert.ThrowsAsync<QuicException>(async () => await stuck.WriteAsync(new byte[1], cts.Token));
        var next = await client.OpenStreamAsync(cts.Token);
        await next.WriteAsync("still here"u8.ToArray(), cts.Token);
        next.CompleteWrites();
        var accepted = await server.AcceptStreamAsync(cts.Token);
        Assert.Equal("still here"u8.ToArray(), await ReadToEndAsync(accepted, cts.Token));
    }

    [Fact]
    public async Task OpenStream_PastTheIncomingStreamLimit_ClosedStreamsMakeRoomForNewOnes()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions() with { MaxIncomingBidirectionalStreams = 4 });
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);
        await using var server = await listener.AcceptAsync(cts.Token);

        // Five times the limit, one after another, each closed both ways before the next: a long-lived
        // link opens streams for as long as it lives, not only as many as the first limit.
        for (var i = 0; i < 20; i++)
        {
            var stream = await client.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(new[] { (byte)i }, cts.Token);
            stream.CompleteWrites();
            var accepted = await server.AcceptStreamAsync(cts.Token);
            Assert.Equal(new[] { (byte)i }, await ReadToEndAsync(accepted, cts.Token));
            accepted.CompleteWrites();
            Assert.Empty(await ReadToEndAsync(stream, cts.Token));
        }
    }

    [Fact]
    public async Task WriteAsync_AfterCompleteWrites_Throws()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);
        var stream = await client.OpenStreamAsync(cts.Token);
        await stream.WriteAsync(new byte[] { 1 }, cts.Token);
        stream.CompleteWrites();
        stream.CompleteWrites(); // idempotent

        await Assert.ThrowsAsync<QuicException>(async () => await stream.WriteAsync(new byte[] { 2 }, cts.Token));
    }

    [Fact]
    public async Task Accept_ManyClients_EachGetsItsOwnConnection()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);
        var serving = Task.Run(async () =>
        {
            var connections = new List<QuicConnection>();
            for (var i = 0; i < 5; i++)
            {
                var connection = await listener.AcceptAsync(cts.Token);
                connections.Add(connection);
                _ = Task.Run(async () =>
                {
                    var stream = await connection.AcceptStreamAsync(cts.Token);
                    var request = await ReadToEndAsync(stream, cts.Token);
                    await stream.WriteAsync(request.Reverse().ToArray(), cts.Token);
                    stream.CompleteWrites();
                }, cts.Token);
            }

            return connections;
        }, cts.Token);

        var replies = await Task.WhenAll(Enumerable.Range(0, 5).Select(async i =>
        {
            await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);
            var stream = await client.OpenStreamAsync(cts.Token);
            await stream.WriteAsync(new[] { (byte)i, (byte)(i + 100) }, cts.Token);
            stream.CompleteWrites();
            return await ReadToEndAsync(stream, cts.Token);
        }));

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(new[] { (byte)(i + 100), (byte)i }, replies[i]);
        }

        foreach (var connection in await serving)
        {
            await connection.DisposeAsync();
        }
    }

    [Fact]
    public async Task Connect_AlpnTheListenerDoesNotSpeak_FailsHandshake()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions());
        using var cts = new CancellationTokenSource(Deadline);

        var error = await Assert.ThrowsAsync<QuicException>(() =>
            QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(alpn: "h3"), cts.Token));

        // CRYPTO_ERROR carrying TLS alert 120 (no_application_protocol), not a handshake timeout.
        Assert.Contains("closed by the peer (error 0x178)", error.Message);
    }

    private static async Task<byte[]> ReadToEndAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        var all = new MemoryStream();
        var buffer = new byte[32 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            all.Write(buffer, 0, n);
        }

        return all.ToArray();
    }

    public void Dispose() => _pki.Dispose();
}
