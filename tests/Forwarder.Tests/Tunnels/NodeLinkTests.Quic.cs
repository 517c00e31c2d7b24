using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Tunnels;

/// <content>
/// QUIC links (<c>node.transport: quic</c>): the node listener's port takes QUIC over UDP, streams
/// carry the yamux link's request and answer, and the same identity rules admit or refuse a peer.
/// </content>
public sealed partial class NodeLinkTests
{
    [Fact]
    public async Task QuicTransport_CarriesConnections_OverOneQuicLink_CountedAsDirectQuic()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, transport: "quic");
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "quic");
        Assert.Equal(((System.Net.IPEndPoint)nodeB.Service<NodeLinkListener>().BoundEndPoint!).Port, nodeB.Service<NodeLinkListener>().QuicEndPoint!.Port);
        Assert.Equal(1, nodeB.Metrics.QuicLinkPort);

        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "hello over quic");
            await SocketClient.AssertEchoAsync(client, new string('q', 600_000));
            client.Shutdown(SocketShutdown.Send);
            Assert.True(await SocketClient.ClosedAsync(client), "the FIN went through the QUIC stream and back");
        }

        await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, $"quic connection {i}");
        }));

        var toB = nodeA.Metrics.Peer("edge-b");
        var fromA = nodeB.Metrics.Peer("edge-a");
        Assert.Equal((1, 1), (toB.LinksUp, toB.LinksOpened));
        Assert.Equal((11, 0, 0), (toB.StreamsOutOver(LinkPath.DirectQuic), toB.StreamsOutOver(LinkPath.DirectTcp), toB.StreamsOutOver(LinkPath.Relay)));
        Assert.Equal(11, fromA.StreamsInOver(LinkPath.DirectQuic));
        Assert.Equal(1, fromA.LinksOpened);
        Assert.Contains("forwarder_node_link_streams_total{peer=\"edge-b\",direction=\"out\",path=\"direct-quic\"} 11", PrometheusText(nodeA), StringComparison.Ordinal);
        Assert.Contains("forwarder_node_link_streams_total{peer=\"edge-a\",direction=\"in\",path=\"direct-quic\"} 11", PrometheusText(nodeB), StringComparison.Ordinal);
        await Eventually.TrueAsync(() => toB.StreamsActive == 0 && fromA.StreamsActive == 0, "the closed streams are no longer active on either node");
    }

    [Fact]
    public async Task QuicTransport_ANodeWithAForeignCertificate_IsRefused()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, transport: "quic");
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, certificateFolder: _foreign, transport: "quic");

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
        Assert.Equal((0, 1), (nodeA.Metrics.Peer("edge-b").LinksUp, nodeA.Metrics.Peer("edge-b").LinkFailures));
        Assert.Equal(0, nodeB.Metrics.Peer("edge-a").LinksOpened);
    }

    [Fact]
    public async Task QuicTransport_ANodeAnsweringUnderAnotherName_IsRefused()
    {
        await using var backend = TcpTestServer.Echo();
        await using var impostor = await StartNodeBAsync(backend.Address, name: "edge-c", transport: "quic");
        await using var nodeA = await StartNodeAAsync(LinkAddress(impostor), backend.Address, transport: "quic");

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
        Assert.Equal(1, nodeA.Metrics.Peer("edge-b").LinkFailures);
        Assert.Equal(0, impostor.Metrics.Peer("edge-a").StreamsIn);
    }

    [Fact]
    public async Task QuicTransport_ANodeNotInPeers_IsRefusedByTheListener()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, peers: "edge-c", transport: "quic");
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "quic");

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        Assert.True(await SocketClient.ClosedAsync(client), "the client is closed");
        Assert.Equal(0, backend.AcceptedCount);
        await Eventually.TrueAsync(() => nodeB.Metrics.LinksRefused(LinkRefusal.Unlisted) == 1, "B counts the refused QUIC link as unlisted");
        Assert.Equal(0, nodeB.Metrics.Peer("edge-a").LinksOpened);
        await Eventually.TrueAsync(() => nodeA.Metrics.Peer("edge-b").LinkFailures == 1, "A counts the link B refused as failed");
    }

    [Fact]
    public async Task AutoTransport_WhereTheFarNodeTakesNoQuic_GoesOverTcp()
    {
        await using var backend = TcpTestServer.Echo();

        // B dials nobody over QUIC, so its port takes no UDP: A's QUIC handshake goes unanswered.
        await using var nodeB = await StartNodeBAsync(backend.Address);
        Assert.Null(nodeB.Service<NodeLinkListener>().QuicEndPoint);
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "auto");

        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, "auto falls back to tcp");
        var toB = nodeA.Metrics.Peer("edge-b");
        Assert.Equal((0, 1), (toB.StreamsOutOver(LinkPath.DirectQuic), toB.StreamsOutOver(LinkPath.DirectTcp)));
    }

    [Fact]
    public async Task AutoTransport_WhereQuicGoesUnanswered_TheFirstStreamTakesTcp_WithoutWaitingOutQuic()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address);

        // A UDP socket on B's link port that reads nothing and answers nothing: A's QUIC Initials
        // vanish (no ICMP error ends the attempt early), as they do where a network drops UDP.
        using var blackHole = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        blackHole.Bind(LinkEndPoint(nodeB));
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "auto");

        var started = System.Diagnostics.Stopwatch.StartNew();
        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, "tcp starts beside the quic attempt");
        var elapsed = started.Elapsed;

        var toB = nodeA.Metrics.Peer("edge-b");
        Assert.Equal((0, 1), (toB.StreamsOutOver(LinkPath.DirectQuic), toB.StreamsOutOver(LinkPath.DirectTcp)));

        // The QUIC attempt alone had 2 s before TCP was tried, and the handshake's own timeout is longer.
        Assert.True(elapsed < TimeSpan.FromSeconds(2), $"the first stream took {elapsed.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task QuicTransport_WhereTheUdpPortIsTaken_TheNodeStillStarts_AndTakesTcpLinks()
    {
        await using var backend = TcpTestServer.Echo();

        // Something else holds B's link port over UDP (B's TCP listener gets the same number).
        using var squatter = UdpSquatterOnAFreeTcpPort();
        var port = ((System.Net.IPEndPoint)squatter.LocalEndPoint!).Port;
        await using var nodeB = await StartNodeBAsync(backend.Address, transport: "auto", listen: $"127.0.0.1:{port}");

        Assert.Null(nodeB.Service<NodeLinkListener>().QuicEndPoint);
        Assert.Equal(0, nodeB.Metrics.QuicLinkPort);
        Assert.Contains("forwarder_node_quic_listening 0", PrometheusText(nodeB), StringComparison.Ordinal);

        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "auto");
        using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(client, "over tcp, as the udp port is taken");
        Assert.Equal(1, nodeA.Metrics.Peer("edge-b").StreamsOutOver(LinkPath.DirectTcp));
    }

    [Fact]
    public async Task QuicTransport_AFarNodeThatStops_ClosesItsLinks_SoTheDiallerSeesThemEndAtOnce()
    {
        await using var backend = TcpTestServer.Echo();
        var nodeB = await StartNodeBAsync(backend.Address, transport: "quic");
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "quic");
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "before B stops");
        }

        Assert.Equal(1, nodeA.Metrics.Peer("edge-b").LinksUp);
        await nodeB.DisposeAsync();

        // The CONNECTION_CLOSE leaves before B's socket closes: A need not wait for pings (15 s) or the idle timeout (30 s).
        await Eventually.TrueAsync(() => nodeA.Metrics.Peer("edge-b").LinksUp == 0, "A sees the link closed", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task QuicTransport_CarriesMoreConnectionsAtOnce_ThanQuicsDefaultStreamLimit()
    {
        await using var backend = TcpTestServer.Echo();
        await using var nodeB = await StartNodeBAsync(backend.Address, transport: "quic");
        await using var nodeA = await StartNodeAAsync(LinkAddress(nodeB), backend.Address, transport: "quic");

        // 150 connections held open together: 150 concurrent streams on one QUIC link (QUIC's default allows 100).
        var clients = await Task.WhenAll(Enumerable.Range(0, 150).Select(_ => SocketClient.ConnectAsync(nodeA.EndPoint("front"))));
        try
        {
            await Task.WhenAll(clients.Select((client, i) => SocketClient.AssertEchoAsync(client, $"concurrent {i}")));
            Assert.Equal(150, nodeA.Metrics.Peer("edge-b").StreamsOutOver(LinkPath.DirectQuic));
            Assert.Equal(1, nodeA.Metrics.Peer("edge-b").LinksOpened);
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    [Fact]
    public void QuicLinkOptions_TheConnectionWindowHoldsEveryStreamsWindow_SoStalledStreamsCannotHoldUpTheOthers()
    {
        // With QUIC's usual 1 MiB, four streams whose far reader stopped (256 KiB windows) took the
        // whole connection window and no other stream on the link moved (iperf3 -P 100 across the
        // NAT lab, perf-reports/quic-link). Either end's options are what the far end may send.
        using var credentials = Credentials("edge-a");
        var client = credentials.QuicClientOptions("edge-b", new PeerVerdict(), TimeSpan.FromSeconds(15));
        var server = credentials.QuicServerOptions(_ => null, _ => { });
        foreach (var options in new Forwarder.Transports.Quic.QuicConnectionOptions[] { client, server })
        {
            Assert.True((long)options.ConnectionWindow >= (long)options.MaxIncomingBidirectionalStreams * options.StreamWindow, $"{options.ConnectionWindow} < {options.MaxIncomingBidirectionalStreams} x {options.StreamWindow}");
        }

        Assert.Equal(TimeSpan.FromSeconds(30), client.IdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), credentials.QuicClientOptions("edge-b", new PeerVerdict(), TimeSpan.FromSeconds(1)).IdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(6), credentials.QuicClientOptions("edge-b", new PeerVerdict(), TimeSpan.FromSeconds(2)).IdleTimeout);
    }

    /// <summary>A UDP socket on a loopback port whose TCP twin was free a moment ago (tests elsewhere on the machine take ports too).</summary>
    private static Socket UdpSquatterOnAFreeTcpPort()
    {
        for (var attempt = 0; ; attempt++)
        {
            var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
            try
            {
                using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                tcp.Bind(udp.LocalEndPoint!);
                return udp;
            }
            catch (SocketException) when (attempt < 20)
            {
                udp.Dispose();
            }
        }
    }
}
