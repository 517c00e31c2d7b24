using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Tunnels;

/// <content>
/// Two nodes that each open a QUIC link to the other end up sharing one: the link edge-a opened
/// (its name sorts first). edge-b's own link drains: the streams on it finish there, every byte
/// through, new ones take edge-a's link, and then it closes.
/// </content>
public sealed partial class NodeLinkTests
{
    [Fact]
    public async Task QuicLinksBothWays_TheLowerNamedNodesLinkIsShared_AndTheOtherDrainsWithoutFailingAStream()
    {
        await using var backend = TcpTestServer.Echo();
        var (portA, portB) = (FreeLinkPort(), FreeLinkPort());
        await using var nodeA = await RunningForwarder.StartAsync(MutualNode("edge-a", portA, "edge-b", portB, backend.Address));
        await using var nodeB = await RunningForwarder.StartAsync(MutualNode("edge-b", portB, "edge-a", portA, backend.Address));
        var (aToB, bToA) = (nodeA.Metrics.Peer("edge-b"), nodeB.Metrics.Peer("edge-a"));

        // edge-b opens its link first, and a stream on it stays open.
        using var held = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
        await SocketClient.AssertEchoAsync(held, "on edge-b's link");
        Assert.Equal((1, 1), (bToA.LinksUp, aToB.LinksUp));

        // edge-a opens its own (it never takes a link edge-b opened): edge-b takes it and drains its own.
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "on edge-a's link");
        }

        await Eventually.TrueAsync(() => bToA.LinksUp == 2 && aToB.LinksUp == 2, "both links are up on both nodes");
        await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            using var client = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, $"edge-b's stream {i}, on edge-a's link");
        }));

        // The held stream still runs on the draining link, which stays up for it.
        await SocketClient.AssertEchoAsync(held, new string('d', 600_000));
        Assert.Equal((2, 2), (bToA.LinksUp, aToB.LinksUp));
        held.Shutdown(SocketShutdown.Send);
        Assert.True(await SocketClient.ClosedAsync(held), "the held stream ended whole");

        await Eventually.TrueAsync(() => bToA.LinksUp == 1 && aToB.LinksUp == 1, "the drained link closed, one link remains");
        var opened = (bToA.LinksOpened, aToB.LinksOpened);
        await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            using var fromB = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
            using var fromA = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(fromB, $"from edge-b {i}");
            await SocketClient.AssertEchoAsync(fromA, $"from edge-a {i}");
        }));

        Assert.Equal(opened, (bToA.LinksOpened, aToB.LinksOpened));
        Assert.Equal((1, 1), (bToA.LinksUp, aToB.LinksUp));
        Assert.Equal(0, bToA.LinkFailures + aToB.LinkFailures);
        Assert.Equal(21, bToA.StreamsOutOver(LinkPath.DirectQuic));
        Assert.Equal(21, aToB.StreamsInOver(LinkPath.DirectQuic));
    }

    [Fact]
    public async Task QuicLinksOpenedAtOnceBothWays_EndAsOneLink_AndNoStreamFails()
    {
        await using var backend = TcpTestServer.Echo();
        var (portA, portB) = (FreeLinkPort(), FreeLinkPort());
        await using var nodeA = await RunningForwarder.StartAsync(MutualNode("edge-a", portA, "edge-b", portB, backend.Address));
        await using var nodeB = await RunningForwarder.StartAsync(MutualNode("edge-b", portB, "edge-a", portA, backend.Address));

        // Both nodes' first streams at once: each dials the other before either link is up.
        for (var round = 0; round < 3; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
            {
                using var client = await SocketClient.ConnectAsync((i % 2 == 0 ? nodeA : nodeB).EndPoint("front"));
                await SocketClient.AssertEchoAsync(client, $"round {round} stream {i} {new string('s', i * 1000)}");
            }));
        }

        var (aToB, bToA) = (nodeA.Metrics.Peer("edge-b"), nodeB.Metrics.Peer("edge-a"));
        await Eventually.TrueAsync(() => bToA.LinksUp == 1 && aToB.LinksUp == 1, "one link remains between the nodes");
        Assert.Equal(0, bToA.LinkFailures + aToB.LinkFailures);
        Assert.Equal((30, 30), (aToB.StreamsOutOver(LinkPath.DirectQuic), bToA.StreamsOutOver(LinkPath.DirectQuic)));
    }

    [Fact]
    public async Task AfterTheSharedLinkEnds_ANewStreamOpensAFreshLink_NotTheDrainingOne()
    {
        await using var backend = TcpTestServer.Echo();
        var (portA, portB) = (FreeLinkPort(), FreeLinkPort());

        // edge-a reaches edge-b through a path that is cut later, as a NAT mapping that expires.
        // A 3 s keep-alive: edge-b sees edge-a's link dead after 12 s, its own drains for 24 s.
        await using var path = new CuttableUdpPath(new IPEndPoint(IPAddress.Loopback, portB));
        await using var nodeA = await RunningForwarder.StartAsync(MutualNode("edge-a", portA, "edge-b", path.EndPoint.Port, backend.Address, "3s"));
        await using var nodeB = await RunningForwarder.StartAsync(MutualNode("edge-b", portB, "edge-a", portA, backend.Address, "3s"));
        var (aToB, bToA) = (nodeA.Metrics.Peer("edge-b"), nodeB.Metrics.Peer("edge-a"));

        using var held = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
        await SocketClient.AssertEchoAsync(held, "on edge-b's link");
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "on edge-a's link: edge-b's drains");
        }

        await Eventually.TrueAsync(() => bToA.LinksUp == 2 && aToB.LinksUp == 2, "both links are up on both nodes");
        path.Cut();
        await Eventually.TrueAsync(() => bToA.LinksUp == 1 && aToB.LinksUp == 1, "edge-a's link timed out on both nodes", TimeSpan.FromSeconds(120));

        // The draining link still carries the held stream, but takes no new one: edge-b dials afresh.
        var opened = bToA.LinksOpened;
        using var fresh = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
        await SocketClient.AssertEchoAsync(fresh, "on a fresh link of edge-b's");
        Assert.Equal((opened + 1, 2), (bToA.LinksOpened, bToA.LinksUp));

        // Once the held stream ends the drained link closes, which it could not were the fresh stream on it.
        await SocketClient.AssertEchoAsync(held, "still on the draining link");
        held.Shutdown(SocketShutdown.Send);
        Assert.True(await SocketClient.ClosedAsync(held), "the held stream ended whole");
        await Eventually.TrueAsync(() => bToA.LinksUp == 1, "the drained link closed");
        await SocketClient.AssertEchoAsync(fresh, "the fresh stream outlives the drained link");
        Assert.Equal(0, bToA.LinkFailures);
        Assert.Equal(2, bToA.StreamsOutOver(LinkPath.DirectQuic));
    }

    [Fact]
    public async Task ADrainThatRunsOutOfTime_ResetsTheStreamsLeft_AndTheLinkCloses()
    {
        await using var backend = TcpTestServer.Echo();
        var (portA, portB) = (FreeLinkPort(), FreeLinkPort());

        // A 500 ms keep-alive: a replaced link drains for 4 s at most.
        await using var nodeA = await RunningForwarder.StartAsync(MutualNode("edge-a", portA, "edge-b", portB, backend.Address, "500ms"));
        await using var nodeB = await RunningForwarder.StartAsync(MutualNode("edge-b", portB, "edge-a", portA, backend.Address, "500ms"));
        var (aToB, bToA) = (nodeA.Metrics.Peer("edge-b"), nodeB.Metrics.Peer("edge-a"));

        using var held = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
        await SocketClient.AssertEchoAsync(held, "on edge-b's link");
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "on edge-a's link: edge-b's drains");
        }

        await Eventually.TrueAsync(() => bToA.LinksUp == 2 && aToB.LinksUp == 2, "both links are up on both nodes");
        var draining = System.Diagnostics.Stopwatch.StartNew();

        // The held stream never ends on its own: the drain's deadline resets it.
        Assert.True(await SocketClient.ClosedAsync(held), "the stream left on the drained link was reset");
        Assert.True(draining.Elapsed > TimeSpan.FromSeconds(2), $"the stream ended {draining.Elapsed.TotalMilliseconds:F0} ms into the drain, before its deadline");
        await Eventually.TrueAsync(() => bToA.LinksUp == 1 && aToB.LinksUp == 1, "the drained link closed, one link remains");

        using var after = await SocketClient.ConnectAsync(nodeB.EndPoint("front"));
        await SocketClient.AssertEchoAsync(after, "on edge-a's link");
        Assert.Equal(0, bToA.LinkFailures + aToB.LinkFailures);
    }

    /// <summary>A node with a link port of its own, whose service "app" (front) is on the other node, and which exports <paramref name="backend"/> as its own.</summary>
    private string MutualNode(string name, int port, string peer, int peerPort, string backend, string keepAlive = "15s") => $"""
        node:
          name: {name}
          transport: quic
          keepAlive: {keepAlive}
          listen: '127.0.0.1:{port}'
          certificate: {Path.Combine(_directory, name + ".pem")}
          key: {Path.Combine(_directory, name + ".key")}
          ca: {Path.Combine(_directory, "ca.pem")}
          peers:
            - {"{"} name: {peer}, address: '127.0.0.1:{peerPort}' {"}"}
        listeners:
          - name: front
            listen: '127.0.0.1:0'
            service: app
        services:
          app:
            connectAttempts: 1
            endpoints:
              - {"{"} address: '{backend}', node: {peer} {"}"}
          local:
            export: true
            endpoints:
              - address: {backend}
        """;

    /// <summary>A loopback port free over both TCP and UDP a moment ago, for a node's link listener (which takes both).</summary>
    private static int FreeLinkPort()
    {
        for (var attempt = 0; ; attempt++)
        {
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            try
            {
                using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(tcp.LocalEndPoint!);
                return ((IPEndPoint)tcp.LocalEndPoint!).Port;
            }
            catch (SocketException) when (attempt < 20)
            {
                // Taken over UDP: another.
            }
        }
    }
}
