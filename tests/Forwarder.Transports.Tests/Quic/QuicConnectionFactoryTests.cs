using System.IO.Pipelines;
using System.Net;
using System.Text;
using Forwarder.Transports.Quic;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>The Kestrel-facing pair: QUIC streams as ConnectionContexts, one QUIC connection per peer.</summary>
public sealed class QuicConnectionFactoryTests : IDisposable
{
    private const string NodeName = "node-f.mesh.test";
    private const string Alpn = "forwarder-test";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly QuicTestPki _pki = new(NodeName);

    [Fact]
    public async Task ConnectAsync_TwoConnectionsToOnePeer_AreStreamsOfOneQuicConnectionAndEcho()
    {
        var serverOptions = new QuicServerOptions { Alpn = Alpn, CertificateFile = _pki.ServerCertificateFile, KeyFile = _pki.ServerKeyFile };
        await using var listener = await new QuicConnectionListenerFactory(serverOptions).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        await using var factory = new QuicConnectionFactory(_ => new QuicClientOptions { Alpn = Alpn, ServerName = NodeName, CaFile = _pki.CaFile });
        using var cts = new CancellationTokenSource(Deadline);
        var serverSide = new List<ConnectionContext>();
        var serving = Task.Run(async () =>
        {
            for (var i = 0; i < 2; i++)
            {
                var accepted = (await listener.AcceptAsync(cts.Token))!;
                serverSide.Add(accepted);
                _ = EchoAsync(accepted.Transport, cts.Token);
            }
        }, cts.Token);

        await using var first = await factory.ConnectAsync(listener.EndPoint, cts.Token);
        await using var second = await factory.ConnectAsync(listener.EndPoint, cts.Token);
        var firstReply = RoundTripAsync(first.Transport, "first " + new string('a', 300_000), cts.Token);
        var secondReply = RoundTripAsync(second.Transport, "second", cts.Token);

        Assert.Equal("first " + new string('a', 300_000), await firstReply);
        Assert.Equal("second", await secondReply);
        await serving;
        // One UDP socket per QUIC connection: both streams came from the same client port.
        Assert.Equal(serverSide[0].RemoteEndPoint, serverSide[1].RemoteEndPoint);
        foreach (var accepted in serverSide)
        {
            await accepted.DisposeAsync();
        }
    }

    [Fact]
    public async Task DisposeAsync_PeerNeverFinishes_ResetsTheStreamInsteadOfWaiting()
    {
        var serverOptions = new QuicServerOptions { Alpn = Alpn, CertificateFile = _pki.ServerCertificateFile, KeyFile = _pki.ServerKeyFile };
        await using var listener = await new QuicConnectionListenerFactory(serverOptions).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        await using var factory = new QuicConnectionFactory(_ => new QuicClientOptions { Alpn = Alpn, ServerName = NodeName, CaFile = _pki.CaFile });
        using var cts = new CancellationTokenSource(Deadline);

        var client = await factory.ConnectAsync(listener.EndPoint, cts.Token);
        await client.Transport.Output.WriteAsync("hello"u8.ToArray(), cts.Token);
        await using var server = (await listener.AcceptAsync(cts.Token))!;
        var read = await server.Transport.Input.ReadAtLeastAsync(5, cts.Token);
        server.Transport.Input.AdvanceTo(read.Buffer.End);

        await client.DisposeAsync().AsTask().WaitAsync(cts.Token); // the server never completes its output

        // The client finished its side before going, so the server reads it to the end...
        while (true)
        {
            var result = await server.Transport.Input.ReadAsync(cts.Token);
            server.Transport.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        // ...and its writes stop being taken once the client's STOP_SENDING lands (a hang fails on the deadline).
        try
        {
            while (!(await server.Transport.Output.WriteAsync(new byte[16 * 1024], cts.Token)).IsCompleted)
            {
            }
        }
        catch (ConnectionResetException e) when (e.InnerException is QuicException)
        {
            // The stream's reset, surfaced through the output pipe as a reset (what a proxy's pumps handle).
        }
    }

    private static async Task<string> RoundTripAsync(IDuplexPipe pipe, string message, CancellationToken cancellationToken)
    {
        await pipe.Output.WriteAsync(Encoding.ASCII.GetBytes(message), cancellationToken);
        await pipe.Output.CompleteAsync();
        var reply = new MemoryStream();
        while (true)
        {
            var result = await pipe.Input.ReadAsync(cancellationToken);
            foreach (var segment in result.Buffer)
            {
                reply.Write(segment.Span);
            }

            pipe.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return Encoding.ASCII.GetString(reply.ToArray());
            }
        }
    }

    private static async Task EchoAsync(IDuplexPipe pipe, CancellationToken cancellationToken)
    {
        await pipe.Input.CopyToAsync(pipe.Output, cancellationToken);
        await pipe.Output.CompleteAsync();
    }

    public void Dispose() => _pki.Dispose();
}
