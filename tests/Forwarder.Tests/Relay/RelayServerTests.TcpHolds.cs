using System.Net;
using System.Net.Sockets;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;
using Microsoft.Extensions.Time.Testing;

namespace Forwarder.Tests.Relay;

/// <content>
/// What TCP rendezvous connections, which come before any certificate, may cost the relay: a
/// hold whose issued token its node does not ask for is closed after seconds, not the token's lifetime; strangers
/// cannot take the part of the holds kept for the addresses registered nodes come from; and a
/// hello started late gets no more than is left of the handshake's time. The relay's clock is
/// driven by the test, so each deadline is crossed exactly rather than waited for.
/// </content>
public sealed partial class RelayServerTests
{
    [Fact]
    public async Task TcpRendezvous_AHoldNoNodeNames_IsClosedAfterFiveSeconds_WhileANamedOneLasts()
    {
        var clock = new FakeTimeProvider();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, time: clock);
        {
            using var stranger = await SendTokenAsync(relay, IssuedTcpHello(relay, "edge-s"), IPAddress.Parse("127.0.0.2"));
            using var named = await SendTokenAsync(relay, IssuedTcpHello(relay, "edge-a", out var namedToken));
            // Noted, not just accepted: each hold's deadline starts (on the fake clock) before its token is noted.
            await Eventually.TrueAsync(() => relay.TcpTokens.Noted == 2, "both tokens are noted");

            // Asked for by the node it was issued to, as the relay does in an introduction.
            Assert.Equal(named.LocalEndPoint, await relay.TcpTokens.SeenAsync(namedToken, "edge-a", TimeSpan.FromSeconds(30), CancellationToken.None));

            clock.Advance(RelayServer.UnnamedHoldTimeout - TimeSpan.FromSeconds(1));
            Assert.False(await ClosedWithinAsync(stranger, TimeSpan.FromMilliseconds(500)), "an unnamed hold lasts until its deadline");
            clock.Advance(TimeSpan.FromSeconds(2));
            Assert.True(await ClosedWithinAsync(stranger, TimeSpan.FromSeconds(20)), "an unnamed hold is closed at its deadline, not the token's lifetime");
            Assert.Equal(1, relay.Registry.TcpHoldsUnnamed);

            Assert.False(await ClosedWithinAsync(named, TimeSpan.FromMilliseconds(500)), "a named token's hold lasts past the deadline");
            clock.Advance(RendezvousTokens.Lifetime);
            Assert.True(await ClosedWithinAsync(named, TimeSpan.FromSeconds(20)), "a named token's hold ends with the token's lifetime");
            Assert.Equal(1, relay.Registry.TcpHoldsUnnamed);

            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
            Assert.Contains("forwarder_relay_tcp_rendezvous_unnamed_total 1", metrics, StringComparison.Ordinal);
        }
    }

    // Strangers get three quarters of the 1024 holds (48 sources at their 16 each here): the rest
    // is kept for the addresses registered nodes' sessions come from, so a flood of token
    // connections cannot stop the nodes punching.
    [Fact]
    public async Task TcpRendezvous_WithTheStrangersShareFull_ARegisteredNodesPunchStillGetsItsHold()
    {
        // The relay's clock stands still: no stranger's hold reaches its deadline while the share fills.
        var clock = new FakeTimeProvider();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, time: clock);
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var strangers = new List<Socket>();
        await using (aLink)
        await using (a)
        {
            var served = relay.Server.Connections;
            try
            {
                for (var source = 2; source < 50; source++)
                {
                    var address = IPAddress.Parse($"127.0.0.{source}");
                    for (var i = 0; i < 16; i++)
                    {
                        strangers.Add(await SendTokenAsync(relay, IssuedTcpHello(relay, $"edge-{source}-{i}"), address));
                    }
                }

                await Eventually.TrueAsync(() => relay.Server.Connections == served + 768, () => $"the 768 strangers' tokens are held ({relay.Server.Connections - served})");
                using (var oneMore = await SendTokenAsync(relay, IssuedTcpHello(relay, "edge-50"), IPAddress.Parse("127.0.0.50")))
                {
                    Assert.True(await ClosedWithinAsync(oneMore, TimeSpan.FromSeconds(20)), "a stranger past the strangers' share is closed at once");
                }

                // The node's own address (its session's) still gets a hold, and the relay its token.
                using var nodeHold = await SendTokenAsync(relay, IssuedTcpHello(relay, "edge-a", out var nodeToken));
                Assert.False(await ClosedWithinAsync(nodeHold, TimeSpan.FromMilliseconds(500)), "the registered node's token connection is held");
                Assert.Equal(nodeHold.LocalEndPoint, await relay.TcpTokens.SeenAsync(nodeToken, "edge-a", TimeSpan.FromSeconds(30), CancellationToken.None));
            }
            finally
            {
                strangers.ForEach(s => s.Dispose());
            }
        }
    }

    // The first byte of a hello gives its sender 3 s for the rest, but never past the 10 s the
    // connection had from its accept: a sender trickling its first byte late gets what is left.
    [Fact]
    public async Task TcpRendezvous_AHelloStartedLate_GetsOnlyWhatIsLeftOfTheHandshakeTime()
    {
        var clock = new FakeTimeProvider();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, time: clock);
        var served = relay.Server.Connections;
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await late.ConnectAsync(relay.EndPoint);
        await Eventually.TrueAsync(() => relay.Server.Connections > served, "the relay serves the connection (its deadline runs)");

        clock.Advance(TimeSpan.FromSeconds(8));
        Assert.False(await ClosedWithinAsync(late, TimeSpan.FromMilliseconds(500)), "a silent connection has its 10 s");
        await late.SendAsync("FW"u8.ToArray(), SocketFlags.None);
        Assert.False(await ClosedWithinAsync(late, TimeSpan.FromMilliseconds(500)), "the hello's start is taken");

        // 10.5 s from the accept: past the handshake's time, short of 8 s + the hello's 3.
        clock.Advance(TimeSpan.FromSeconds(2.5));
        Assert.True(await ClosedWithinAsync(late, TimeSpan.FromSeconds(20)), "the hello is closed when the handshake's time is up");
    }
}
