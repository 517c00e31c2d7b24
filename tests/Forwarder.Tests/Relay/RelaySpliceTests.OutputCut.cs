using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Mux;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Relay;

/// <content>
/// The node that accepts a spliced link says so (event 706) when the link's last frames were
/// dropped because the peer half-closed and stopped reading.
/// </content>
public sealed partial class RelaySpliceTests
{
    [Fact]
    public async Task ASplicedPeerThatHalfClosesAndStopsReading_IsCut_AndTheAcceptingNodeLogs706()
    {
        await using var backend = new Blaster();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");

        // Node B in its own process, for its log: keep-alives far off, so only the half-close ends the link.
        var config = Path.Combine(_mesh.Directory, "edge-b-cut.yaml");
        await File.WriteAllTextAsync(config, $"""
            node:
              name: edge-b
              keepAlive: 60s
              relayMode: splice
              certificate: {Path.Combine(_mesh.Directory, "edge-b.pem")}
              key: {Path.Combine(_mesh.Directory, "edge-b.key")}
              ca: {Path.Combine(_mesh.Directory, "ca.pem")}
              peers:
                - name: edge-a
              relays:
                - {"{"} name: {relay.Name}, address: '{relay.Address}' {"}"}
            listeners:
              - name: unused
                listen: '127.0.0.1:0'
                protocol: echo
            services:
              app:
                export: true
                endpoints:
                  - address: {backend.Server.Address}
            """);
        using var nodeB = ForwarderProcess.Start("--config", config);
        await Eventually.TrueAsync(() => relay.Registry.Registered("edge-b") is not null || nodeB.HasExited, "node B registered with the relay");
        Assert.False(nodeB.HasExited, nodeB.Errors + nodeB.Output);

        // Edge-a by hand: a rendezvous, its half of the splice, TLS as the link's client.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var asker = await HandNode.RegisterAsync(relay, "edge-a", _mesh.Directory);
        var (stream, status) = await TunnelHandshake.RequestAsync(asker.Session, new TunnelRequest(TunnelRequestKind.Splice, "edge-b", "link"), timeout.Token);
        Assert.Equal(TunnelStatus.Connected, status);
        string? field;
        await using (stream)
        {
            field = await TunnelHandshake.ReadFieldAsync(stream!.Transport.Input, timeout.Token);
        }

        Assert.True(SplicedRelayLinks.TryParseTicket(field, out _, out var ticket), $"a ticket: {field}");
        using var half = await PresentAsync(relay.SpliceEndPoint!, ticket);
        Assert.Equal(RelaySplices.Paired, (await SocketClient.ReceiveExactlyAsync(half, 1))[0]);
        using var credentials = new NodeCredentials(
            "edge-a",
            new CertificateFiles(Path.Combine(_mesh.Directory, "edge-a.pem"), Path.Combine(_mesh.Directory, "edge-a.key")),
            Path.Combine(_mesh.Directory, "ca.pem"),
            NullLogger.Instance);
        await using var ssl = new SslStream(new NetworkStream(half, ownsSocket: false));
        await ssl.AuthenticateAsClientAsync(credentials.ClientOptions("edge-b", NodeCredentials.LinkProtocol, new PeerVerdict()), timeout.Token);

        // One stream to the backend, granted far more than the sockets hold; then nothing is read.
        var connect = new MemoryStream();
        var writer = PipeWriter.Create(connect);
        TunnelHandshake.WriteConnect(writer, backend.Server.Address);
        await writer.FlushAsync();
        await ssl.WriteAsync(YamuxFrame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 1, 256 * 1024 * 1024));
        await ssl.WriteAsync(YamuxFrame(YamuxFrameType.Data, YamuxFlags.None, 1, (uint)connect.Length));
        await ssl.WriteAsync(connect.ToArray());
        await ssl.FlushAsync();

        // Every buffer from the backend to this socket is full once the backend cannot send.
        await Eventually.TrueAsync(() => backend.Stalled(TimeSpan.FromSeconds(2)), () => $"the backend's sends stall ({backend.Sent} bytes sent)", TimeSpan.FromSeconds(60));
        half.Shutdown(SocketShutdown.Send);

        // Within yamux's close timeout (10 s) after the link ended, node B gives up on what it queued.
        const string Cut = "SplicedRelayLinks[706] Link with node edge-a";
        await Eventually.TrueAsync(() => nodeB.Output.Contains(Cut, StringComparison.Ordinal) || nodeB.HasExited, "node B logs event 706", TimeSpan.FromSeconds(60));
        Assert.True(nodeB.Output.Contains(Cut, StringComparison.Ordinal), nodeB.Errors + nodeB.Output);
    }

    private static byte[] YamuxFrame(YamuxFrameType type, YamuxFlags flags, uint stream, uint length)
    {
        var frame = new byte[12];
        frame[1] = (byte)type;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)flags);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), stream);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), length);
        return frame;
    }

    /// <summary>A backend that sends to every connection as fast as it is taken, and knows when a send stopped completing.</summary>
    private sealed class Blaster : IAsyncDisposable
    {
        private long _sent;
        private long _lastSend = Environment.TickCount64;

        public Blaster() => Server = new TcpTestServer(SendAsync);

        public TcpTestServer Server { get; }

        public long Sent => Interlocked.Read(ref _sent);

        /// <summary>True when something was sent, and no send has completed for <paramref name="quiet"/>.</summary>
        public bool Stalled(TimeSpan quiet) => Sent > 0 && Environment.TickCount64 - Interlocked.Read(ref _lastSend) > quiet.TotalMilliseconds;

        public ValueTask DisposeAsync() => Server.DisposeAsync();

        private async Task SendAsync(Socket socket)
        {
            var chunk = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    Interlocked.Add(ref _sent, await socket.SendAsync(chunk, SocketFlags.None));
                    Interlocked.Exchange(ref _lastSend, Environment.TickCount64);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Node B closed the stream: the test is over.
            }
        }
    }
}
