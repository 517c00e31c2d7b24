using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Threading.Channels;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>
/// Our QUIC against a second, independent implementation: quic-go, run by <c>quicgo/echo.go</c>
/// (<see cref="QuicGoPeer"/>). Both ends keep 64 KiB stream and 128 KiB connection windows, so every
/// concurrent stream of 1-4 MiB runs far past them; the handshake checks the test CA and the server
/// name; and each side sees the other's close as a clean application close with code 0.
/// </summary>
public sealed class QuicGoInteropTests : IAsyncLifetime
{
    internal const string NodeName = "node-go.mesh.test";
    internal const string Alpn = "forwarder-test";
    private const int Streams = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(NodeName);
    private QuicGoPeer? _peer;

    // The Go build runs before any test deadline starts: on a loaded machine it alone can take most of one.
    public Task InitializeAsync() => QuicGoPeer.BuildAsync();

    public async Task DisposeAsync()
    {
        if (_peer is not null)
        {
            await _peer.DisposeAsync();
        }

        _pki.Dispose();
    }

    [Fact]
    public async Task OurClient_ConcurrentStreamsEchoedByQuicGo_PastTheWindows_ThenClosesCleanly()
    {
        using var cts = new CancellationTokenSource(Deadline);
        var port = await StartServerAsync();

        var client = await QuicConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ClientOptions(_pki, NodeName), cts.Token);
        await using (client)
        {
            await Task.WhenAll(Enumerable.Range(1, Streams).Select(i => EchoThroughAsync(client, i * 1024 * 1024 + i, cts.Token)));
        }

        await _peer!.WaitForAsync(lines => lines.Contains("closed 0"), "quic-go saw our application close with code 0", Deadline);
        Assert.DoesNotContain(_peer.Lines(), line => line.StartsWith("error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task OurClient_NameNotInQuicGosCertificate_FailsTheHandshake()
    {
        using var cts = new CancellationTokenSource(Deadline);
        var port = await StartServerAsync();

        await Assert.ThrowsAsync<QuicException>(async () => await QuicConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port),
            ClientOptions(_pki, "someone-else.mesh.test"), cts.Token));
    }

    [Fact]
    public async Task OurClient_QuicGosCertificateFromAnotherCa_FailsTheHandshake()
    {
        using var cts = new CancellationTokenSource(Deadline);
        using var otherCa = new QuicTestPki(NodeName);
        var port = await StartServerAsync();

        await Assert.ThrowsAsync<QuicException>(async () => await QuicConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port),
            ClientOptions(otherCa, NodeName), cts.Token));
    }

    [Fact]
    public async Task QuicGoClient_ConcurrentStreamsEchoedByOurListener_PastTheWindows_ThenClosesCleanly()
    {
        using var cts = new CancellationTokenSource(Deadline);
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions(_pki));
        const int size = 1024 * 1024;
        _peer = await QuicGoPeer.StartAsync(null, "client", $"127.0.0.1:{listener.LocalEndPoint.Port}", _pki.CaFile, NodeName,
            Streams.ToString(CultureInfo.InvariantCulture), size.ToString(CultureInfo.InvariantCulture));

        await using var server = await listener.AcceptAsync(cts.Token);
        var echoes = new List<Task>();
        for (var i = 0; i < Streams; i++)
        {
            echoes.Add(EchoAsync(await server.AcceptStreamAsync(cts.Token), cts.Token));
        }

        await Task.WhenAll(echoes);
        await _peer.WaitForAsync(lines => lines.Contains("done") || lines.Any(line => line.StartsWith("error", StringComparison.Ordinal)), "the quic-go client finished", Deadline);
        Assert.Equal(Streams, _peer.Lines().Count(line => line.StartsWith("stream-ok ", StringComparison.Ordinal)));
        Assert.DoesNotContain(_peer.Lines(), line => line.StartsWith("error", StringComparison.Ordinal));
        // quic-go closed with application code 0: our connection reports exactly that to a waiting accept.
        var closed = await Assert.ThrowsAsync<ChannelClosedException>(async () => await server.AcceptStreamAsync(cts.Token));
        Assert.Contains("closed by the peer (error 0x0)", closed.InnerException?.Message, StringComparison.Ordinal);
    }

    internal static QuicClientOptions ClientOptions(QuicTestPki pki, string serverName) => new()
    {
        Alpn = Alpn,
        ServerName = serverName,
        CaFile = pki.CaFile,
        StreamWindow = 64 * 1024,
        ConnectionWindow = 128 * 1024,
    };

    internal static QuicServerOptions ServerOptions(QuicTestPki pki) => new()
    {
        Alpn = Alpn,
        CertificateFile = pki.ServerCertificateFile,
        KeyFile = pki.ServerKeyFile,
        StreamWindow = 64 * 1024,
        ConnectionWindow = 128 * 1024,
    };

    /// <summary>Sends <paramref name="size"/> random bytes on a new stream and checks the echo.</summary>
    internal static async Task EchoThroughAsync(QuicConnection connection, int size, CancellationToken cancellationToken)
    {
        var payload = RandomNumberGenerator.GetBytes(size);
        var stream = await connection.OpenStreamAsync(cancellationToken);
        var send = Task.Run(async () =>
        {
            for (var offset = 0; offset < payload.Length; offset += 100_000)
            {
                await stream.WriteAsync(payload.AsMemory(offset, Math.Min(100_000, payload.Length - offset)), cancellationToken);
            }

            stream.CompleteWrites();
        }, cancellationToken);
        var echoed = await ReadToEndAsync(stream, cancellationToken);
        await send;
        Assert.True(payload.AsSpan().SequenceEqual(echoed), $"stream {stream.Id}: {payload.Length} bytes sent, {echoed.Length} different ones echoed");
    }

    internal static async Task EchoAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[32 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
        }

        stream.CompleteWrites();
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

    private async Task<int> StartServerAsync()
    {
        _peer = await QuicGoPeer.StartAsync(null, "server", "127.0.0.1:0", _pki.CaFile, _pki.ServerCertificateFile, _pki.ServerKeyFile);
        return await _peer.ListeningPortAsync(Deadline);
    }
}
