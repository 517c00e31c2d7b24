using System.Net;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <summary>
/// How a node chooses between the direct link and its relays: direct while the link works, a
/// relay when it fails or breaks (for the streams opened meanwhile), direct again once it is
/// back; relays that restart or go away are survived by re-registering or using another.
/// </summary>
public sealed class RelayFallbackTests : IDisposable
{
    private readonly TestMesh _mesh = new();

    public void Dispose() => _mesh.Dispose();

    [Fact]
    public async Task WithAWorkingDirectLink_StreamsGoDirect()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, LinkAddress(nodeB), [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        for (var i = 0; i < 3; i++)
        {
            await EchoThroughAsync(nodeA, $"direct {i}");
        }

        var toB = nodeA.Metrics.Peer("edge-b");
        Assert.Equal((3, 0), (toB.StreamsOut, toB.StreamsOutRelayed));
        Assert.Equal(0, relay.Registry.Node("edge-a").StreamsOpened);
    }

    [Fact]
    public async Task WhenTheDirectPathFails_StreamsUseTheRelay_AndGoDirectAgainWhenItIsBack()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var path = new SwitchablePath(LinkEndPoint(nodeB), passing: false);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, path.Address, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);
        var toB = nodeA.Metrics.Peer("edge-b");

        // No direct path: the first stream finds the link failing and takes the relay.
        await EchoThroughAsync(nodeA, "relayed");
        Assert.Equal((1, 1), (toB.StreamsOut, toB.StreamsOutRelayed));
        Assert.True(toB.LinkFailures >= 1);

        // The path comes back: once the link is re-opened in the background, streams go direct.
        path.Restore();
        await Eventually.TrueAsync(
            async () =>
            {
                await EchoThroughAsync(nodeA, "upgrading");
                return toB.StreamsOut > toB.StreamsOutRelayed && toB.LinksUp == 1;
            },
            "a stream goes direct again");
        var relayedBefore = toB.StreamsOutRelayed;
        await EchoThroughAsync(nodeA, "direct");
        Assert.Equal(relayedBefore, toB.StreamsOutRelayed);

        // The path is cut under the link: the link is dropped and new streams take the relay.
        path.Cut();
        await Eventually.TrueAsync(() => toB.LinksUp == 0, "the broken link is dropped");
        await EchoThroughAsync(nodeA, "relayed again");
        Assert.Equal(relayedBefore + 1, toB.StreamsOutRelayed);
    }

    [Fact]
    public async Task ARestartedRelay_IsRegisteredWithAgain_AndCarriesTrafficAgain()
    {
        await using var backend = TcpTestServer.Echo();
        var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var port = relay.EndPoint.Port;
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);
        await EchoThroughAsync(nodeA, "before the restart");

        await relay.DisposeAsync();
        await Eventually.TrueAsync(() => nodeA.Metrics.Relay("relay-1").Up == 0 && nodeB.Metrics.Relay("relay-1").Up == 0, "both nodes see the relay gone");

        await using var restarted = await RunningRelay.StartAsync(_mesh.Directory, port: port);
        await WaitRegisteredAsync(restarted, nodeA, nodeB);
        await EchoThroughAsync(nodeA, "after the restart");
        Assert.Equal(2, nodeA.Metrics.Relay("relay-1").Registrations);
    }

    [Fact]
    public async Task WithSeveralRelays_LosingOne_LeavesTheOthers()
    {
        await using var backend = TcpTestServer.Echo();
        var first = await RunningRelay.StartAsync(_mesh.Directory, "relay-1");
        await using var second = await RunningRelay.StartAsync(_mesh.Directory, "relay-2");
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, first, second);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [first, second]);
        await WaitRegisteredAsync(first, nodeA, nodeB);
        await WaitRegisteredAsync(second, nodeA, nodeB);

        // Streams are spread over both.
        for (var i = 0; i < 4; i++)
        {
            await EchoThroughAsync(nodeA, $"spread {i}");
        }

        Assert.True(first.Registry.Node("edge-a").StreamsOpened > 0 && second.Registry.Node("edge-a").StreamsOpened > 0, "both relays carried streams");

        await first.DisposeAsync();
        await Eventually.TrueAsync(() => nodeA.Metrics.Relay("relay-1").Up == 0, "node A sees relay-1 gone");
        var before = second.Registry.Node("edge-a").StreamsOpened;
        for (var i = 0; i < 4; i++)
        {
            await EchoThroughAsync(nodeA, $"only relay-2 {i}");
        }

        Assert.Equal(before + 4, second.Registry.Node("edge-a").StreamsOpened);
    }

    private static async Task EchoThroughAsync(RunningForwarder nodeA, string message)
    {
        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, message);
    }

    private static Task WaitRegisteredAsync(RunningRelay relay, params RunningForwarder[] nodes)
        => Eventually.TrueAsync(() => nodes.All(n => n.Metrics.Relay(relay.Name).Up == 1), $"every node registered with {relay.Name}");

    private static IPEndPoint LinkEndPoint(RunningForwarder node) => (IPEndPoint)node.Service<NodeLinkListener>().BoundEndPoint!;

    private static string LinkAddress(RunningForwarder node) => $"127.0.0.1:{LinkEndPoint(node).Port}";
}
