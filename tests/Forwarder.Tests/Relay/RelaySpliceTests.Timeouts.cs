using System.Net.Sockets;
using System.Text;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Forwarder.Tests.Relay;

/// <content>
/// The spliced links' timeouts: idle, and half-closed with nothing crossing.
/// </content>
public sealed partial class RelaySpliceTests
{
    // A node that vanishes without a FIN or RST (power cut, NAT state dropped) would leave its
    // spliced link holding two relay sockets and one of the asker's streams for ever: a link
    // nothing crossed for relay.spliceIdleTimeout is closed, and so is one half-closed with nothing
    // crossing it for relay.spliceHalfCloseTimeout, while a link that keeps talking stays, and so
    // does a half-closed one whose open half still sends. The relay's clock is the test's: each
    // step is a quarter second of it, each timeout crossed exactly.
    [Fact]
    public async Task ASplicedLink_IdleOrLeftHalfClosed_IsClosed_AndFreesTheAskersPlace()
    {
        var clock = new FakeTimeProvider();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice", splice: "  spliceIdleTimeout: 40s\n  spliceHalfCloseTimeout: 1s", time: clock);
        await using var asker = await HandNode.RegisterAsync(relay, "edge-c", _mesh.Directory);
        await using var far = await HandNode.RegisterAsync(relay, "edge-d", _mesh.Directory);
        var splicePort = relay.SpliceEndPoint!;
        using var idleOne = await PairAsync(splicePort, await RendezvousAsync(asker, far, "edge-d"));
        using var busyOne = await PairAsync(splicePort, await RendezvousAsync(asker, far, "edge-d"));
        using var halfOne = await PairAsync(splicePort, await RendezvousAsync(asker, far, "edge-d"));
        using var halfSending = await PairAsync(splicePort, await RendezvousAsync(asker, far, "edge-d"));
        Assert.Equal(4, relay.Registry.Node("edge-c").SplicesActive);

        // Two half-closing sides send their FINs, which reach the others; those never close, and
        // one of them keeps sending its last bytes back.
        foreach (var pair in new[] { halfOne, halfSending })
        {
            pair.Asker.Shutdown(SocketShutdown.Send);
            Assert.True(await SocketClient.ClosedAsync(pair.Far), "the FIN crossed the splice");
        }

        var elapsed = TimeSpan.Zero;
        var lastByte = TimeSpan.Zero;
        async Task StepAsync(bool halfSends)
        {
            await busyOne.Asker.SendAsync("ping"u8.ToArray(), SocketFlags.None);
            Assert.Equal("ping", Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(busyOne.Far, 4)));
            if (halfSends)
            {
                await halfSending.Far.SendAsync("last"u8.ToArray(), SocketFlags.None);
                Assert.Equal("last", Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(halfSending.Asker, 4)));
                lastByte = elapsed;
            }

            clock.Advance(TimeSpan.FromMilliseconds(250));
            elapsed += TimeSpan.FromMilliseconds(250);
        }

        while (elapsed < TimeSpan.FromSeconds(3))
        {
            await StepAsync(halfSends: true);
        }

        Assert.Equal((0L, 1L), (relay.Registry.SplicesIdleClosed, relay.Registry.SplicesHalfClosedClosed));
        Assert.True(await SocketClient.ClosedAsync(halfOne.Asker), "the quiet half-closed link is closed");

        // The open half stops sending: its link is quiet and half-closed, and goes a second later.
        while (relay.Registry.SplicesHalfClosedClosed == 1 && elapsed < lastByte + TimeSpan.FromSeconds(3))
        {
            await StepAsync(halfSends: false);
        }

        Assert.Equal(2L, relay.Registry.SplicesHalfClosedClosed);
        Assert.True(elapsed - lastByte >= TimeSpan.FromSeconds(1) && elapsed - lastByte <= TimeSpan.FromSeconds(1.5), $"the half-closed link went once quiet for its timeout ({(elapsed - lastByte).TotalSeconds} s)");
        Assert.True(await SocketClient.ClosedAsync(halfSending.Asker), "the half-closed link that fell quiet is closed");

        while (elapsed < TimeSpan.FromSeconds(39.5))
        {
            await StepAsync(halfSends: false);
        }

        Assert.Equal(0L, relay.Registry.SplicesIdleClosed);
        while (elapsed < TimeSpan.FromSeconds(41))
        {
            await StepAsync(halfSends: false);
        }

        Assert.Equal((1L, 2L), (relay.Registry.SplicesIdleClosed, relay.Registry.SplicesHalfClosedClosed));
        Assert.True(await SocketClient.ClosedAsync(idleOne.Asker), "the idle link is closed");
        Assert.True(await SocketClient.ClosedAsync(idleOne.Far), "both halves of the idle link are closed");
        await busyOne.Far.SendAsync("pong"u8.ToArray(), SocketFlags.None);
        Assert.Equal("pong", Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(busyOne.Asker, 4)));
        await Eventually.TrueAsync(() => relay.Registry.Node("edge-c") is { SplicesActive: 1, StreamsActive: 1 }, "the closed links free the asker's places");

        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
        Assert.Contains("forwarder_relay_spliced_links_timed_out_total{reason=\"idle\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("forwarder_relay_spliced_links_timed_out_total{reason=\"half_closed\"} 2", metrics, StringComparison.Ordinal);
    }
}
