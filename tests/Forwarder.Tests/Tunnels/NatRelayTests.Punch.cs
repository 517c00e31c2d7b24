using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <content>
/// Hole punching across the NAT lab: node A knows no address for node B, whose site has no port
/// open; streams go through the relay while no punch gets through (UDP dropped), and move to a
/// direct QUIC link once the relay's introduction lets the nodes punch through their NATs (plain
/// MASQUERADE, or with a firewall that admits only replies), or stay on the relay where site A's
/// NAT is symmetric.
/// </content>
public sealed partial class NatRelayTests
{
    [Theory]
    [InlineData(false, 7451)]
    [InlineData(true, 7452)]
    public async Task Punching_UpgradesFromTheRelayToADirectQuicLink(bool restrictInbound, int port)
    {
        if (restrictInbound)
        {
            _lab.RestrictInbound();
        }

        // Site B's router drops UDP at first: no punch can get through, streams take the relay.
        _lab.BlockUdp();
        StartRelay();
        StartNodeB(transport: "quic", port: port);
        StartNodeA(_mesh.Directory, transport: "quic", peerAddress: false);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("through the relay");
                return Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"failed\"") >= 1;
            },
            "a punch was tried and failed while UDP is dropped",
            TimeSpan.FromSeconds(60));
        Assert.True(Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"") >= 1);
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\""));

        // UDP passes again: a later punch gets through and new streams go direct.
        _lab.PassUdp();
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("looking for the punched link");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\"") > 0;
            },
            "streams go over the punched QUIC link",
            TimeSpan.FromSeconds(60));

        Assert.True(Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"ok\"") >= 1);
        Assert.True(Metric(_lab.NodeB, "forwarder_node_link_streams_total", "direction=\"in\",path=\"direct-quic\"") > 0);
        var relayed = Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"");
        for (var i = 0; i < 5; i++)
        {
            await EchoAsync($"direct {i}");
        }

        Assert.Equal(relayed, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\""));

        if (restrictInbound)
        {
            // Idle past QUIC's 30 s idle timeout (and a NAT's unreplied-UDP timeout): keep-alive pings
            // hold the link and both mappings, so the next stream needs no new punch.
            var punches = Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"ok\"");
            await Task.Delay(TimeSpan.FromSeconds(40));
            await EchoAsync("after a quiet spell");
            Assert.Equal(punches, Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"ok\""));
            Assert.Equal(relayed, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\""));
            Assert.Equal(1, Metric(_lab.NodeA, "forwarder_node_links_up", "peer=\"edge-b\""));
        }
    }

    [Fact]
    public async Task Punching_BehindASymmetricNat_Fails_AndStreamsStayOnTheRelay()
    {
        _lab.MakeSiteASymmetric();
        StartRelay();
        StartNodeB(transport: "quic", port: 7453);
        StartNodeA(_mesh.Directory, transport: "quic", peerAddress: false);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("through the relay");
                return Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"failed\"") >= 1;
            },
            "a punch was tried and failed",
            TimeSpan.FromSeconds(60));

        for (var i = 0; i < 5; i++)
        {
            await EchoAsync($"still relayed {i}");
        }

        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"ok\""));
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\""));
        Assert.True(Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"") >= 6);
    }

    [Fact]
    public async Task Punching_WhenTheFirstRoundsProbesDieBeforeTheFarNat_ASecondRoundWithoutTheLimitGetsThrough()
    {
        // TTL 1: node B's first-round probes die at its own router, as they would with a NAT further
        // away than node.punchTtl; the router keeps its own ports closed, so node A's first Initials
        // are dropped there without a trace.
        _lab.CloseRouterBPorts();
        StartRelay();
        var nodeB = StartNodeB(transport: "quic", port: 7454, punchTtl: 1);
        var nodeA = StartNodeA(_mesh.Directory, transport: "quic", peerAddress: false);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        await Eventually.TrueAsync(
            async () =>
            {
                try
                {
                    await EchoAsync("looking for the punched link");
                }
                catch (Exception ex) when (ex is System.Net.Sockets.SocketException or EndOfStreamException)
                {
                    // A relayed stream lost to a relay session that missed its 1 s pings on a loaded machine: not what this test is about.
                    return false;
                }

                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\"") > 0;
            },
            "streams go over the link punched in the second round",
            TimeSpan.FromSeconds(90));

        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_punches_total", "result=\"failed\""));
        Assert.Contains("(hop limit: 1)", nodeB.Output, StringComparison.Ordinal);
        Assert.Contains("(hop limit: no limit)", nodeB.Output, StringComparison.Ordinal);
        Assert.Contains("(round 2)", nodeA.Output, StringComparison.Ordinal);
    }
}
