using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <content><c>node.transport: auto</c> across the NAT lab: TCP while the network drops UDP, QUIC once it lets UDP through.</content>
public sealed partial class NatRelayTests
{
    [Fact]
    public async Task AutoTransport_FallsBackToTcpWhileUdpIsBlocked_AndTakesQuicOnceItPasses()
    {
        StartRelay();
        StartNodeB(transport: "auto");
        StartNodeA(_mesh.Directory, transport: "auto");
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        _lab.OpenDirectRoute();
        _lab.OpenDirectQuicRoute();
        _lab.BlockUdp();
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("while udp is blocked");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-tcp\"") > 0;
            },
            "streams go direct over tcp",
            TimeSpan.FromSeconds(60));
        Assert.Equal(0, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\""));

        _lab.PassUdp();
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("once udp passes");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"direct-quic\"") > 0;
            },
            "streams go direct over quic",
            TimeSpan.FromSeconds(90));
        Assert.True(Metric(_lab.NodeB, "forwarder_node_link_streams_total", "direction=\"in\",path=\"direct-quic\"") > 0);
    }
}
