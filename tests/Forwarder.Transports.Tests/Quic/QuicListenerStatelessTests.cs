using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Transports.Quic;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>What the listener answers for packets no connection takes: Version Negotiation and stateless resets.</summary>
public sealed class QuicListenerStatelessTests : IDisposable
{
    private const string NodeName = "node-r.mesh.test";
    private const string Alpn = "forwarder-test";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(NodeName);

    private QuicServerOptions ServerOptions(byte[] resetKey) => new()
    {
        Alpn = Alpn,
        CertificateFile = _pki.ServerCertificateFile,
        KeyFile = _pki.ServerKeyFile,
        StatelessResetKey = resetKey,
    };

    [Fact]
    public async Task Receive_InitialOfAnUnknownVersion_AnsweredWithVersionNegotiationOfferingV1()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions(RandomNumberGenerator.GetBytes(32)));
        using var cts = new CancellationTokenSource(Deadline);
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        byte[] dcid = RandomNumberGenerator.GetBytes(8), scid = RandomNumberGenerator.GetBytes(5);
        var initial = new byte[1200]; // a long header of version 0x1a2a3a4a, padded to the minimum Initial size
        initial[0] = 0xc0;
        BinaryPrimitives.WriteUInt32BigEndian(initial.AsSpan(1), 0x1a2a3a4a);
        initial[5] = (byte)dcid.Length;
        dcid.CopyTo(initial, 6);
        initial[6 + dcid.Length] = (byte)scid.Length;
        scid.CopyTo(initial, 7 + dcid.Length);

        await udp.SendAsync(initial, listener.LocalEndPoint, cts.Token);
        var reply = (await udp.ReceiveAsync(cts.Token)).Buffer;

        Assert.True((reply[0] & 0x80) != 0, "not a long header");
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(1))); // version 0: Version Negotiation
        Assert.Equal(scid, reply.AsSpan(6, reply[5]).ToArray()); // addressed to the client's source ID
        var afterDcid = 6 + reply[5];
        Assert.Equal(dcid, reply.AsSpan(afterDcid + 1, reply[afterDcid]).ToArray());
        var versionsAt = afterDcid + 1 + reply[afterDcid];
        Assert.Contains(1u, Enumerable.Range(0, (reply.Length - versionsAt) / 4).Select(i => BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(versionsAt + 4 * i))));
    }

    [Fact]
    public async Task Receive_SmallPacketOfAnUnknownVersion_IsNotAnswered()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions(RandomNumberGenerator.GetBytes(32)));
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var small = new byte[100];
        small[0] = 0xc0;
        BinaryPrimitives.WriteUInt32BigEndian(small.AsSpan(1), 0x1a2a3a4a);
        small[5] = 8;
        small[14] = 0;

        await udp.SendAsync(small, listener.LocalEndPoint);
        // An answer would come at once; the listener's own round trip below bounds how long we wait for it.
        using var cts = new CancellationTokenSource(Deadline);
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, ClientOptions(), cts.Token);

        Assert.Equal(0, udp.Available);
    }

    [Fact]
    public async Task Send_AfterTheListenerLostTheConnection_RestartedListenerResetsItAndThePeerFailsFast()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        using var cts = new CancellationTokenSource(Deadline);
        var (client, stream, endPoint) = await ConnectAndLoseTheServerAsync(key, cts.Token);
        await using var _ = client;
        await using var restarted = QuicListener.Bind(endPoint, ServerOptions(key));
        var clock = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<QuicException>(() => WriteAndReadAsync(stream, cts.Token));

        Assert.Contains("stateless reset", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the reset took {clock.Elapsed} (the idle timeout is 5 minutes)");
    }

    [Fact]
    public async Task Send_AfterTheListenerLostTheConnection_ResetUnderAnotherKeyIsIgnored()
    {
        using var cts = new CancellationTokenSource(Deadline);
        var (client, stream, endPoint) = await ConnectAndLoseTheServerAsync(RandomNumberGenerator.GetBytes(32), cts.Token, idleTimeout: TimeSpan.FromSeconds(3));
        await using var _ = client;
        await using var restarted = QuicListener.Bind(endPoint, ServerOptions(RandomNumberGenerator.GetBytes(32)));

        var error = await Assert.ThrowsAsync<QuicException>(() => WriteAndReadAsync(stream, cts.Token));

        Assert.Contains("idle timeout", error.Message); // the reset's token did not match: the client waited its idle timeout out
    }

    private QuicClientOptions ClientOptions(TimeSpan? idleTimeout = null) => new()
    {
        Alpn = Alpn,
        ServerName = NodeName,
        CaFile = _pki.CaFile,
        IdleTimeout = idleTimeout ?? TimeSpan.FromMinutes(5),
    };

    /// <summary>
    /// A working connection whose server side then vanishes as in a crash: the listener's socket closes
    /// and nothing tells the client. Returns the client, a stream on it, and the address to restart on.
    /// </summary>
    private async Task<(QuicConnection Client, QuicStream Stream, IPEndPoint EndPoint)> ConnectAndLoseTheServerAsync(byte[] key,
        CancellationToken cancellationToken, TimeSpan? idleTimeout = null)
    {
        var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), ServerOptions(key) with { IdleTimeout = TimeSpan.FromMinutes(5) });
        var endPoint = listener.LocalEndPoint;
        var client = await QuicConnection.ConnectAsync(endPoint, ClientOptions(idleTimeout), cancellationToken);
        var server = await listener.AcceptAsync(cancellationToken);
        var stream = await client.OpenStreamAsync(cancellationToken);
        var echo = Task.Run(async () =>
        {
            var accepted = await server.AcceptStreamAsync(cancellationToken);
            var buffer = new byte[1];
            await accepted.ReadAsync(buffer, cancellationToken);
            await accepted.WriteAsync(buffer, cancellationToken);
        }, cancellationToken);
        await WriteAndReadAsync(stream, cancellationToken);
        await echo;

        await listener.DisposeAsync(); // closes the socket; the accepted connection never gets to say goodbye
        await server.DisposeAsync();
        return (client, stream, endPoint);
    }

    private static async Task WriteAndReadAsync(QuicStream stream, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(new byte[] { 7 }, cancellationToken);
        var buffer = new byte[1];
        Assert.Equal(1, await stream.ReadAsync(buffer, cancellationToken));
    }

    public void Dispose() => _pki.Dispose();
}
