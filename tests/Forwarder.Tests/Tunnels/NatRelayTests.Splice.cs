using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <content>
/// A link spliced by the relay across the NAT lab: node A knows no address for node B and there is
/// no route between the sites, so the only way is both nodes connecting out to the relay's splice
/// port and running their own TLS 1.3 + yamux link through it, the relay seeing ciphertext only.
/// </content>
public sealed partial class NatRelayTests
{
    [Fact]
    public async Task AcrossNat_ARelayInSpliceMode_JoinsTheNodesLinkEndToEnd_AndCarriesEveryByte()
    {
        StartRelay(mode: "splice");
        StartNodeB(port: 7464);
        StartNodeA(_mesh.Directory, peerAddress: false);
        await WaitRegisteredAsync(_lab.NodeA, _lab.NodeB);

        await Eventually.TrueAsync(
            async () =>
            {
                await EchoAsync("looking for the spliced link");
                return Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay-spliced\"") > 0;
            },
            "streams go over the link the relay splices",
            TimeSpan.FromSeconds(90));
        // At least one: a second is dialled if a 1 s keep-alive lapses on a loaded machine.
        Assert.True(Metric(_lab.Relay, "forwarder_relay_spliced_links_total", "node=\"edge-a\"", 9902) >= 1);

        // From now on the relay passes bytes it cannot read: every one of these goes through the splice and back.
        var relayedByRelay = Metric(_lab.Relay, "forwarder_relay_streams_total", "node=\"edge-a\",result=\"relayed\"", 9902);
        var spliced = Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay-spliced\"");
        using (var client = await SocketClient.ConnectAsync(new IPEndPoint(IPAddress.Parse(NatLab.NodeAClientSide), FrontPort)))
        {
            var payload = new byte[4 << 20];
            Random.Shared.NextBytes(payload);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            var receiving = SocketClient.ReceiveExactlyAsync(client, payload.Length);
            await Task.WhenAll(client.SendAsync(payload, SocketFlags.None, timeout.Token).AsTask(), receiving).WaitAsync(timeout.Token);
            Assert.Equal(payload, await receiving);
        }

        Assert.Equal(spliced + 1, Metric(_lab.NodeA, "forwarder_node_link_streams_total", "direction=\"out\",path=\"relay-spliced\""));
        Assert.True(Metric(_lab.NodeB, "forwarder_node_link_streams_total", "direction=\"in\",path=\"relay-spliced\"") > 0);
        Assert.Equal(relayedByRelay, Metric(_lab.Relay, "forwarder_relay_streams_total", "node=\"edge-a\",result=\"relayed\"", 9902));
        Assert.True(Metric(_lab.Relay, "forwarder_relay_bytes_total", "node=\"edge-a\",direction=\"from\"", 9902) > 4 << 20, "the relay counted the spliced ciphertext");
    }
}
