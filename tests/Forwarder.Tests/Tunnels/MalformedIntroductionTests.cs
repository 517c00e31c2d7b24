using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tls;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// A real node registered with a relay played by this test (with a real relay certificate), which
/// introduces it with targets no relay writes: the node refuses each, its session goes on, and a
/// well-formed introduction on that same session is still answered.
/// </summary>
public sealed class MalformedIntroductionTests : IDisposable
{
    private const string Token = "00112233445566778899aabbccddeeff";

    private readonly TestMesh _mesh = new();

    public void Dispose() => _mesh.Dispose();

    [Fact]
    public async Task MalformedTcpIntroductions_AreRefused_AndTheRelaySessionGoesOn()
    {
        using var relayPort = new TcpListener(IPAddress.Loopback, 0);
        relayPort.Start();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var node = await RunningForwarder.StartAsync($"""
            node:
              name: edge-b
              listen: '127.0.0.1:0'
              keepAlive: 2s
              certificate: {Path.Combine(_mesh.Directory, "edge-b.pem")}
              key: {Path.Combine(_mesh.Directory, "edge-b.key")}
              ca: {Path.Combine(_mesh.Directory, "ca.pem")}
              peers:
                - name: edge-a
              relays:
                - {"{"} name: relay-1, address: '{relayPort.LocalEndpoint}' {"}"}
            listeners:
              - name: unused
                listen: '127.0.0.1:0'
                protocol: echo
            """);

        using var socket = await relayPort.AcceptSocketAsync(timeout.Token);
        await using var connection = new TcpConnection(socket, MemoryPool<byte>.Shared, new TcpTransportOptions());
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        using var credentials = new NodeCredentials(
            "relay-1",
            new CertificateFiles(Path.Combine(_mesh.Directory, "relay-1.pem"), Path.Combine(_mesh.Directory, "relay-1.key")),
            Path.Combine(_mesh.Directory, "ca.pem"),
            NullLogger.Instance);
        await ssl.AuthenticateAsServerAsync(credentials.ServerOptions(NodeCredentials.RelayProtocol, new PeerVerdict()), timeout.Token);
        await using var link = new TlsConnection(connection, ssl, carrier);
        await using var session = new YamuxSession(link, isClient: false, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared));
        session.Start();
        await using (var registration = (await session.AcceptStreamAsync(timeout.Token))!)
        {
            Assert.Equal(TunnelRequestKind.Register, (await TunnelHandshake.ReadRequestAsync(registration.Transport.Input, timeout.Token))!.Value.Kind);
            TunnelHandshake.WriteStatus(registration.Transport.Output, TunnelStatus.Connected);
            await registration.Transport.Output.FlushAsync(timeout.Token);
        }

        // A port nobody listens on: the node's SYN to the introduced node is reset, which is all right here.
        int closed;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            closed = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }

        foreach (var target in new[]
        {
            "garbage",
            $"127.0.0.1:{closed}",
            $"127.0.0.1:{closed}/",
            $"/{Token}",
            $"127.0.0.1:{closed}/{Token}/",
            $"127.0.0.1/{Token}",
            $"127.0.0.1:0/{Token}",
            $"127.0.0.1:{closed}/not-a-token",
            $"[::1]:{closed}/{Token}",
            $"255.255.255.255:{closed}/{Token}",
            new string('/', TunnelHandshake.MaxFieldLength),
        })
        {
            var (refused, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.TcpPunched, "edge-a", target), timeout.Token);
            Assert.Null(refused);
            Assert.True(status == TunnelStatus.NotAllowed, $"'{target}' was answered {status}");
        }

        var (answered, connected) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.TcpPunched, "edge-a", $"127.0.0.1:{closed}/{Token}"), timeout.Token);
        Assert.Equal(TunnelStatus.Connected, connected);
        await answered!.DisposeAsync();
        Assert.False(session.Completion.IsCompleted, "the relay session is up");
        Assert.Equal(1, node.Metrics.Relay("relay-1").Up);
    }
}
