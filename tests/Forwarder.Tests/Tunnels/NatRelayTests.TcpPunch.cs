using System.Net;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <content>
/// TCP simultaneous open across the NAT lab, under <c>node.transport: auto</c>, where site B's
/// network drops UDP so no QUIC hole can be punched: node A knows no address for node B and site
/// B opens no port, yet the relay's introduction lets the nodes open a TCP connection through
/// both NATs (plain MASQUERADE, or with a firewall that admits only replies), and streams leave
/// the relay for it. Where site A's NAT is symmetric, streams stay on the relay.
/// </content>
public sealed partial class NatRelayTests
{
    [Theory]
    [InlineData(false, 7461)]
    [InlineData(true, 7462)]
    public async Task TcpSimultaneousOpen_WhereUdpIsBlocked_MovesStreamsOffTheRelay(bool restrictInbound, int port)
    {
        if (restrictInbound)
        {
            _lab.RestrictInbound();
        }

        _lab.BlockUdp();
        StartRelay();
        var nodeB = StartNodeB(transport: "auto", port: port);
        var nodeA = StartNodeA(_mesh.Directory, transport: "auto", peerAddress: false);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("looking for the punched TCP link");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"punched-tcp\"") > 0;
            },
            "streams go over the TCP link opened by simultaneous open",
            TimeSpan.FromSeconds(90));

        Assert.True(Metric(_lab.NodeA, "forwarder_node_punches_total", "path=\"punched-tcp\",result=\"ok\"") >= 1);
        Assert.True(Metric(_lab.NodeB, "forwarder_node_link_streams_total", "direction=\"in\",path=\"punched-tcp\"") > 0);
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\""));
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-tcp\""));
        Assert.Contains("by simultaneous open", nodeA.Output, StringComparison.Ordinal);
        Assert.Contains("connected from", nodeB.Output, StringComparison.Ordinal);

        // From now on the relay carries nothing: every byte of these goes over the punched link and back.
        var relayedByA = Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"");
        var relayedByRelay = Metric(_lab.Relay, "forwarder_relay_streams_total", "node=\"edge-a\",result=\"relayed\"", 9902);
        var punched = Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"punched-tcp\"");
        for (var i = 0; i < 5; i++)
        {
            await EchoAsync($"punched {i}");
        }

        using (var client = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Parse(NatLab.NodeAClientSide), FrontPort)))
        {
            var payload = new byte[4 << 20];
            Random.Shared.NextBytes(payload);
            var receiving = SocketClient.ReceiveExactlyAsync(client, payload.Length);
            await client.SendAsync(payload, System.Net.Sockets.SocketFlags.None);
            Assert.Equal(payload, await receiving);
        }

        Assert.Equal(punched + 6, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"punched-tcp\""));
        Assert.Equal(relayedByA, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\""));
        Assert.Equal(relayedByRelay, Metric(_lab.Relay, "forwarder_relay_streams_total", "node=\"edge-a\",result=\"relayed\"", 9902));
    }

    [Fact]
    public async Task TcpSimultaneousOpen_BehindASymmetricNat_Fails_AndStreamsStayOnTheRelay()
    {
        _lab.MakeSiteASymmetric();
        _lab.BlockUdp();
        StartRelay();
        StartNodeB(transport: "auto", port: 7463);
        StartNodeA(_mesh.Directory, transport: "auto", peerAddress: false);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("through the relay");
                return Metric(_lab.NodeA, "forwarder_node_punches_total", "path=\"punched-tcp\",result=\"failed\"") >= 1;
            },
            "a simultaneous open was tried and failed",
            TimeSpan.FromSeconds(90));

        for (var i = 0; i < 5; i++)
        {
            await EchoAsync($"still relayed {i}");
        }

        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_punches_total", "path=\"punched-tcp\",result=\"ok\""));
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"punched-tcp\""));
        Assert.True(Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay\"") >= 6);
    }
}
