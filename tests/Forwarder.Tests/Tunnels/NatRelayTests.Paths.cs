using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <content>
/// Switching paths loses no byte silently: a stream keeps the path it started on. One on the
/// relay runs on through an upgrade to a direct link and a fall back to the relay with every
/// byte checked; one on a direct link that is cut fails loudly (a reset), never with a clean end
/// as if it were complete. The direct link is a TCP one through a port site B opens, or a QUIC
/// link through holes punched once UDP passes (cut: UDP dropped again).
/// </content>
public sealed partial class NatRelayTests
{
    private const int Chunk = 16 * 1024;

    [Theory]
    [InlineData(false, NatLab.LinkPort)]
    [InlineData(true, 7455)]
    public async Task PathSwitches_ARelayedStreamRunsWholeThroughAnUpgradeAndAFallback_AndOneOnACutDirectLinkIsReset(bool punched, int port)
    {
        var directPath = punched ? "direct-quic" : "direct-tcp";
        if (punched)
        {
            _lab.BlockUdp();
        }

        StartRelay();
        StartNodeB(transport: punched ? "quic" : "tcp", port: port);
        StartNodeA(_mesh.Directory, transport: punched ? "quic" : "tcp", peerAddress: !punched);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);
        var front = new IPEndPoint(IPAddress.Parse(NatLab.NodeAClientSide), FrontPort);

        // A stream on the relay (there is no route between the sites yet), checking every byte it gets back.
        using var stop = new CancellationTokenSource();
        var relayed = await CountingStream.StartAsync(front, stop.Token);
        await Eventually.TrueAsync(() => relayed.Verified >= 1 << 20, "the relayed stream carries its first MiB", TimeSpan.FromSeconds(60));
        Assert.Equal(1, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\""));

        // Upgrade: new streams go direct, the relayed one carries on.
        if (punched)
        {
            _lab.PassUdp();
        }
        else
        {
            _lab.OpenDirectRoute();
        }

        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("looking for the direct route");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", $"direction=\"out\",path=\"{directPath}\"") > 0;
            },
            "streams go direct",
            TimeSpan.FromSeconds(90));
        var directStreams = Metric(_lab.NodeA, "forwarder_node_link_streams_total", $"direction=\"out\",path=\"{directPath}\"");
        using var stopDirect = new CancellationTokenSource();
        var direct = await CountingStream.StartAsync(front, stopDirect.Token);
        await Eventually.TrueAsync(() => direct.Verified >= 1 << 20, "the direct stream carries its first MiB", TimeSpan.FromSeconds(60));
        Assert.Equal(directStreams + 1, Metric(_lab.NodeA, "forwarder_node_link_streams_total", $"direction=\"out\",path=\"{directPath}\""));
        var relayedAtUpgrade = relayed.Verified;
        await Eventually.TrueAsync(() => relayed.Verified >= relayedAtUpgrade + (1 << 20), "the relayed stream runs on beside the direct link", TimeSpan.FromSeconds(60));

        // Fall back: the direct link goes silent. The stream on it is reset once the link is found
        // dead; new streams take the relay; the relayed stream never notices.
        var relayedAtCut = relayed.Verified;
        var relayStreams = Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"");
        if (punched)
        {
            _lab.BlockUdp();
        }
        else
        {
            _lab.CutDirectRoute();
        }

        var failure = await Assert.ThrowsAsync<SocketException>(() => direct.Completion.WaitAsync(TimeSpan.FromSeconds(90)));
        Assert.Equal(SocketError.ConnectionReset, failure.SocketErrorCode);
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("through the relay again");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"") > relayStreams;
            },
            "new streams take the relay after the cut",
            TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(() => relayed.Verified >= relayedAtCut + (1 << 20), "the relayed stream runs on after the cut", TimeSpan.FromSeconds(60));

        // The relayed stream ends cleanly with every byte it sent back and checked.
        await stop.CancelAsync();
        var total = await relayed.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(total >= relayedAtCut + (1 << 20));
        output.WriteLine($"relayed stream: {total} bytes checked; direct stream: {direct.Verified} before its reset");
    }

    /// <summary>
    /// One connection through the front that sends a counting byte pattern and checks each byte of
    /// the echo, chunk after chunk until stopped, then ends with a FIN and waits for the echo's.
    /// </summary>
    private sealed class CountingStream
    {
        private long _verified;

        private CountingStream()
        {
        }

        /// <summary>Bytes echoed back and found right so far.</summary>
        public long Verified => Interlocked.Read(ref _verified);

        /// <summary>The bytes checked in all, once the stream ended cleanly; faults as the connection did (a wrong byte: <see cref="InvalidDataException"/>).</summary>
        public Task<long> Completion { get; private set; } = null!;

        public static async Task<CountingStream> StartAsync(IPEndPoint front, CancellationToken stop)
        {
            var stream = new CountingStream();
            var socket = await SocketClient.ConnectAsync(front);
            stream.Completion = Task.Run(() => stream.RunAsync(socket, stop));
            return stream;
        }

        private async Task<long> RunAsync(Socket socket, CancellationToken stop)
        {
            using (socket)
            {
                var sent = new byte[Chunk];
                for (long offset = 0; !stop.IsCancellationRequested; offset += Chunk)
                {
                    for (var i = 0; i < Chunk; i++)
                    {
                        sent[i] = Pattern(offset + i);
                    }

                    await socket.SendAsync(sent, SocketFlags.None);
                    var echoed = await SocketClient.ReceiveExactlyAsync(socket, Chunk);
                    if (!echoed.AsSpan().SequenceEqual(sent))
                    {
                        throw new InvalidDataException($"wrong bytes in the echo at offset {offset}");
                    }

                    Interlocked.Add(ref _verified, Chunk);
                }

                socket.Shutdown(SocketShutdown.Send);
                var rest = await SocketClient.ReceiveToEndAsync(socket);
                return rest.Length == 0 ? Verified : throw new InvalidDataException($"{rest.Length} bytes after the last echo");
            }
        }

        /// <summary>A byte that depends on its offset (251 is prime, so no chunk repeats the one before).</summary>
        private static byte Pattern(long offset) => (byte)(offset % 251);
    }
}
