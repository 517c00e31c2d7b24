using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Relay;

/// <content>
/// What one node's introductions may cost: the relay makes ten a second for one asker, and a far
/// node answers at most two TCP introductions of one peer at once.
/// </content>
public sealed partial class RelayServerTests
{
    // Each introduction has the far node open sockets and probe for seconds: a node asking for
    // thirty at once gets its ten a second, the rest are refused as over its limit, and another
    // node's introductions are its own.
    [Fact]
    public async Task Introductions_AreRateLimitedPerAsker()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var (c, cLink) = await DialAndRegisterAsync(relay, "edge-c");
        await using (aLink)
        await using (a)
        await using (cLink)
        await using (c)
        {
            // The bucket holds 10 and refills 10/s: on a loaded box the 30 asks spread over a while,
            // so at most 10 plus what refilled while they were asked may pass (measured, not assumed).
            var started = Stopwatch.GetTimestamp();
            var asked = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => AskTcpPunchAsync(a, "edge-b")));
            var elapsed = Stopwatch.GetElapsedTime(started);
            var limited = asked.Count(r => r.Status == TunnelStatus.Limited);
            var mostPassed = RelayNode.IntroductionsPerSecond * (1 + elapsed.TotalSeconds);
            Assert.True(
                30 - limited <= mostPassed && limited < 30,
                $"{limited} of 30 introductions asked within {elapsed.TotalSeconds:0.00} s refused as over the asker's limit (at most {mostPassed:0.0} may pass)");
            Assert.All(asked.Where(r => r.Status != TunnelStatus.Limited), r => Assert.Equal(TunnelStatus.UnknownNode, r.Status));
            Assert.Equal(TunnelStatus.UnknownNode, (await AskTcpPunchAsync(c, "edge-b")).Status);
            Assert.Equal((limited, 0L), (relay.Registry.Node("edge-a").IntroductionsLimited, relay.Registry.Node("edge-a").StreamsRefused));

            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
            Assert.Contains($"forwarder_relay_introductions_limited_total{{node=\"edge-a\",by=\"relay\"}} {limited}", metrics, StringComparison.Ordinal);
        }
    }

    // Each TCP introduction costs the far node sockets and seconds of probing: a real node answers
    // at most two of one peer at once (each until its SYN comes or its window ends) and refuses
    // the rest as limited. The asker's token connections come from ports whose listener's backlog
    // is full, so the far node's SYNs to them meet silence (not a reset) and each answer lasts.
    [Fact]
    public async Task ANode_AnswersAtMostTwoTcpIntroductionsOfOnePeerAtOnce()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-a", [relay]);
        await Eventually.TrueAsync(() => nodeB.Metrics.Relay(relay.Name).Up == 1, "edge-b registered");
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var sockets = new List<Socket>();
        await using (aLink)
        await using (a)
        {
            try
            {
                var asked = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => AskTcpPunchAsync(a, "edge-b", async token =>
                {
                    await SendTokenFromSilentPortAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, token)!, sockets);
                })));
                Assert.Equal(
                    (2, 3),
                    (asked.Count(r => r.Status == TunnelStatus.Connected), asked.Count(r => r.Status == TunnelStatus.Limited)));
                Assert.Equal((3L, 0L), (relay.Registry.Node("edge-a").IntroductionsFarLimited, relay.Registry.Node("edge-a").IntroductionsLimited));
            }
            finally
            {
                lock (sockets)
                {
                    sockets.ForEach(h => h.Dispose());
                }
            }
        }
    }

    /// <summary>
    /// A token connection from a port that also has a listener whose backlog is full (both with
    /// SO_REUSEPORT): a SYN from elsewhere to that port is dropped, as a NAT with no mapping drops it.
    /// </summary>
    private static async Task<Socket> SendTokenFromSilentPortAsync(RunningRelay relay, byte[] hello, List<Socket> sockets)
    {
        Socket Shared()
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            lock (sockets)
            {
                sockets.Add(socket);
            }

            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.SetRawSocketOption(1, 15, BitConverter.GetBytes(1)); // SOL_SOCKET, SO_REUSEPORT
            return socket;
        }

        var listener = Shared();
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        for (var i = 0; i < 4; i++)
        {
            var filler = Shared();
            filler.Blocking = false;
            try
            {
                filler.Connect(listener.LocalEndPoint!);
            }
            catch (SocketException)
            {
                // In progress: a filler only needs to occupy the backlog.
            }
        }

        var hold = Shared();
        hold.Bind(listener.LocalEndPoint!);
        await hold.ConnectAsync(relay.EndPoint);
        await hold.SendAsync(hello, SocketFlags.None);
        return hold;
    }
}
