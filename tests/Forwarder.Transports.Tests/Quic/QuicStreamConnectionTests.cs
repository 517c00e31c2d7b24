using System.Buffers;
using System.Net;
using Forwarder.Transports.Quic;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Quic;

/// <summary>A QUIC stream as a proxy's connection: a failed connection reads as a reset on either side.</summary>
public sealed class QuicStreamConnectionTests : IDisposable
{
    private const string NodeName = "node-b.mesh.test";
    private const string Alpn = "forwarder-test";
    private readonly QuicTestPki _pki = new(NodeName);

    public void Dispose() => _pki.Dispose();

    [Fact]
    public async Task HalfClosedUpload_ConnectionClosedByPeer_FlushThrowsConnectionReset()
    {
        await using var listener = QuicListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new QuicServerOptions { Alpn = Alpn, CertificateFile = _pki.ServerCertificateFile, KeyFile = _pki.ServerKeyFile });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var client = await QuicConnection.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions { Alpn = Alpn, ServerName = NodeName, CaFile = _pki.CaFile }, cts.Token);
        var server = await listener.AcceptAsync(cts.Token);
        var stream = await client.OpenStreamAsync(cts.Token);
        var context = new QuicStreamConnection(stream, null, null);
        context.Transport.Output.Write("hello"u8);
        await context.Transport.Output.FlushAsync(cts.Token);

        // The download direction ends cleanly (FIN), so no read side is left to notice the link die.
        var accepted = await server.AcceptStreamAsync(cts.Token);
        accepted.CompleteWrites();
        var read = await context.Transport.Input.ReadAsync(cts.Token);
        while (!read.IsCompleted)
        {
            context.Transport.Input.AdvanceTo(read.Buffer.End);
            read = await context.Transport.Input.ReadAsync(cts.Token);
        }

        await server.DisposeAsync(); // the link dies while the client still uploads

        // The upload goes on until the write side fails: it must fail as a reset, not hang (the
        // deadline) nor complete quietly, nor throw the transport's own exception type.
        var thrown = await Record.ExceptionAsync(async () =>
        {
            while (true)
            {
                context.Transport.Output.Write(new byte[16 * 1024]);
                if ((await context.Transport.Output.FlushAsync(cts.Token)).IsCompleted)
                {
                    return;
                }

                await Task.Yield();
            }
        });

        Assert.IsType<ConnectionResetException>(thrown);
    }
}
