using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Tcp;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Relay;

/// <summary>
/// Links a relay splices (<c>relay.mode: splice</c>): two nodes with no address for each other
/// run their own TLS link over two TCP connections the relay joins, so it carries only
/// ciphertext; tickets are one-time, bound to the pair and short-lived, and a bad one harms no
/// other pair; where the relay or the far node will not splice, streams take the terminating relay.
/// </summary>
public sealed partial class RelaySpliceTests : IDisposable
{
    private readonly TestMesh _mesh = new();

    public RelaySpliceTests()
    {
        // Two more nodes for the tests that speak the relay protocol by hand.
        using var authority = MeshAuthority.OpenOrCreate(_mesh.Directory, TimeSpan.FromDays(1), out _);
        authority.IssueNode("edge-d", _mesh.Directory, TimeSpan.FromDays(1)).Dispose();
    }

    public void Dispose() => _mesh.Dispose();

    [Fact]
    public async Task NodesWithNoAddressForEachOther_LinkThroughASplicingRelay_WhichForwardsOnlyCiphertext()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");

        // Node A reaches the relay through recorders on another loopback address: one for the
        // relay's port, one for the splice port, which A dials at the host it knows the relay by.
        using var sessionRecorder = new RecordingForwarder(relay.EndPoint);
        using var spliceRecorder = new RecordingForwarder(relay.SpliceEndPoint!);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        relay.AddressOverride = $"127.0.0.2:{relay.EndPoint.Port}";
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);
        await WaitSplicedAsync(nodeA);
        var toB = nodeA.Metrics.Peer("edge-b");
        var relayedBefore = toB.StreamsOutRelayed;

        var secret = "plaintext-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        using (var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, secret);
            await SocketClient.AssertEchoAsync(client, new string('s', 500_000));
            client.Shutdown(SocketShutdown.Send);
            Assert.True(await SocketClient.ClosedAsync(client), "the FIN went over the spliced link and back");
        }

        Assert.Equal((2, relayedBefore), (toB.StreamsOutOver(LinkPath.RelaySpliced), toB.StreamsOutRelayed));
        Assert.Equal(2, nodeB.Metrics.Peer("edge-a").StreamsInOver(LinkPath.RelaySpliced));
        var a = relay.Registry.Node("edge-a");
        Assert.Equal((1L, 1L, relayedBefore), (a.Splices, a.SplicesActive, a.StreamsOpened));
        Assert.True(a.BytesFrom >= 500_000 && a.BytesTo >= 500_000, $"the splice counts the link's bytes: {a.BytesFrom} from, {a.BytesTo} to");

        // What crossed the splice port (node A's half): the ticket, the relay's pairing byte, then TLS records.
        var forwarded = spliceRecorder.Recorded;
        Assert.True(forwarded.Length > 1_000_000, $"both directions of the echo crossed the splice port ({forwarded.Length} bytes)");
        Assert.Equal(-1, forwarded.AsSpan().IndexOf(Encoding.ASCII.GetBytes(secret)));
        Assert.Equal(-1, forwarded.AsSpan().IndexOf(Encoding.ASCII.GetBytes(new string('s', 64))));
        Assert.True(forwarded.AsSpan().StartsWith(RelaySplices.Magic), "the half starts with its ticket");
        var afterTicket = RelaySplices.Magic.Length + RelaySplices.TicketLength;
        Assert.Equal((RelaySplices.Paired, (byte)0x16), (forwarded[afterTicket], forwarded[afterTicket + 1]));
        Assert.True(sessionRecorder.Recorded.Length > 0, "node A's relay session went through its recorder too");

        using var http = new HttpClient();
        var relayMetrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
        Assert.Contains("forwarder_relay_spliced_links_total{node=\"edge-a\"} 1", relayMetrics, StringComparison.Ordinal);
        Assert.Contains("forwarder_relay_spliced_links_active{node=\"edge-a\"} 1", relayMetrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ForgedReplayedAndExpiredTickets_AreRefused_AndAHalfThatNeverPairsIsClosed_WhileOtherLinksCarryOn()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice", splice: "  ticketLifetime: 1s");
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, relay);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);
        await WaitSplicedAsync(nodeA);
        var relayedBefore = relay.Registry.Node("edge-a").StreamsOpened;
        using var held = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(held, "a spliced link before the attacks");
        Assert.Equal(1, relay.Registry.Node("edge-a").SplicesActive);

        // Two nodes speaking the protocol by hand: edge-c asks, edge-d takes every offer.
        await using var asker = await HandNode.RegisterAsync(relay, "edge-c", _mesh.Directory);
        await using var far = await HandNode.RegisterAsync(relay, "edge-d", _mesh.Directory);
        var splicePort = relay.SpliceEndPoint!;

        // Forged: sixteen random bytes.
        using (var forged = await PresentAsync(splicePort, System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)))
        {
            Assert.True(await SocketClient.ClosedAsync(forged), "a forged ticket is closed");
        }

        Assert.Equal(1, relay.Registry.TicketsRefused);

        // A genuine pair: both halves get the pairing byte and then each other's bytes.
        var (askerTicket, farTicket) = await RendezvousAsync(asker, far, "edge-d");
        using (var one = await PresentAsync(splicePort, askerTicket))
        using (var two = await PresentAsync(splicePort, farTicket))
        {
            Assert.Equal(RelaySplices.Paired, (await SocketClient.ReceiveExactlyAsync(one, 1))[0]);
            Assert.Equal(RelaySplices.Paired, (await SocketClient.ReceiveExactlyAsync(two, 1))[0]);
            await one.SendAsync("across the splice"u8.ToArray(), SocketFlags.None);
            Assert.Equal("across the splice", Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(two, 17)));

            // Replayed while its pair is spliced, and after: refused, the pair untouched.
            using (var replayed = await PresentAsync(splicePort, askerTicket))
            {
                Assert.True(await SocketClient.ClosedAsync(replayed), "a used ticket is closed");
            }

            await two.SendAsync("still joined"u8.ToArray(), SocketFlags.None);
            Assert.Equal("still joined", Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(one, 12)));
        }

        Assert.Equal(2, relay.Registry.TicketsRefused);
        Assert.Equal(1, relay.Registry.Node("edge-c").Splices);

        // A half whose partner never comes is closed at expiry, and the late partner's ticket is void.
        var (lonelyTicket, lateTicket) = await RendezvousAsync(asker, far, "edge-d");
        using (var lonely = await PresentAsync(splicePort, lonelyTicket))
        {
            Assert.True(await SocketClient.ClosedAsync(lonely), "the unpaired half is closed when its ticket expires");
        }

        await Eventually.TrueAsync(() => relay.Registry.TicketsExpired == 1, "the expiry is counted");
        using (var late = await PresentAsync(splicePort, lateTicket))
        {
            Assert.True(await SocketClient.ClosedAsync(late), "an expired ticket is closed");
        }

        Assert.Equal(3, relay.Registry.TicketsRefused);
        await Eventually.TrueAsync(() => relay.Registry.Node("edge-c").StreamsActive == 0, "expired and finished rendezvous free the asker's places");

        await SocketClient.AssertEchoAsync(held, "untouched by any of it");
        using var fresh = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
        await SocketClient.AssertEchoAsync(fresh, "new streams still spliced");
        Assert.Equal(relayedBefore, relay.Registry.Node("edge-a").StreamsOpened);
    }

    [Fact]
    public async Task ARendezvous_IsAskedOnlyOverTheAskersOwnSession_AndOnlyWithAnotherRegisteredNode()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");
        await using var asker = await HandNode.RegisterAsync(relay, "edge-c", _mesh.Directory);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // Itself, and a node that is not registered: no ticket.
        foreach (var node in new[] { "edge-c", "edge-d" })
        {
            var (stream, status) = await TunnelHandshake.RequestAsync(asker.Session, new TunnelRequest(TunnelRequestKind.Splice, node, "link"), timeout.Token);
            Assert.Null(stream);
            Assert.Equal(TunnelStatus.UnknownNode, status);
        }

        // Over a connection that is no registered session, the splice port answers nothing but its own protocol.
        using var stranger = await PresentAsync(relay.SpliceEndPoint!, new byte[16]);
        Assert.True(await SocketClient.ClosedAsync(stranger));
        Assert.Equal(1, relay.Registry.TicketsRefused);

        // One that sends nothing at all is closed once its time to send a ticket (5 s) is up.
        using var silent = await SocketClient.ConnectAsync(relay.SpliceEndPoint!);
        Assert.True(await SocketClient.ClosedAsync(silent), "a connection that never sends its ticket is closed");
        Assert.Equal(2, relay.Registry.TicketsRefused);
    }

    // A relay listening on [::] takes IPv4 nodes on its main port; its splice port must too, or
    // every IPv4 node's spliced link fails and falls back (on hosts where bindv6only is 1, or
    // everywhere for a socket .NET does not make dual-mode itself).
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public async Task ARelayOnTheIPv6Wildcard_TakesTicketsOverIPv4AndIPv6(string from)
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice", listen: "[::]");
        await using var asker = await HandNode.RegisterAsync(relay, "edge-c", _mesh.Directory);
        await using var far = await HandNode.RegisterAsync(relay, "edge-d", _mesh.Directory);
        var splicePort = new IPEndPoint(IPAddress.Parse(from), relay.SpliceEndPoint!.Port);

        var (askerTicket, farTicket) = await RendezvousAsync(asker, far, "edge-d");
        using var pair = await PairAsync(splicePort, askerTicket, farTicket);
        await pair.Asker.SendAsync("over the dual-mode splice port"u8.ToArray(), SocketFlags.None);
        Assert.Equal("over the dual-mode splice port", Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(pair.Far, 30)));
        Assert.Equal(1, relay.Registry.Node("edge-c").Splices);
    }

    // The relay joins two halves by their tickets and could join a half to the wrong node: the far
    // node, offered a link from edge-a, takes it only if the TLS client proves edge-a's
    // certificate. Here the asker's half is presented by a client holding edge-a's certificate
    // (linked), or edge-c's (refused), though edge-b admits edge-c too.
    [Theory]
    [InlineData("edge-a", true)]
    [InlineData("edge-c", false)]
    public async Task TheFarNode_TakesASplicedLinkOnlyFromTheNodeItWasOffered(string presenting, bool linked)
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-a\n    - name: edge-c", [relay]);
        await Eventually.TrueAsync(() => nodeB.Metrics.Relay(relay.Name).Up == 1, "edge-b registered");
        await using var asker = await HandNode.RegisterAsync(relay, "edge-a", _mesh.Directory);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (stream, status) = await TunnelHandshake.RequestAsync(asker.Session, new TunnelRequest(TunnelRequestKind.Splice, "edge-b", "link"), timeout.Token);
        Assert.Equal(TunnelStatus.Connected, status);
        string? field;
        await using (stream)
        {
            field = await TunnelHandshake.ReadFieldAsync(stream!.Transport.Input, timeout.Token);
        }

        Assert.True(SplicedRelayLinks.TryParseTicket(field, out var port, out var ticket), $"a ticket: {field}");
        var tcp = new TcpConnectionFactory(new TcpTransportOptions(), new Forwarder.Transports.Memory.PinnedBlockMemoryPool(64 * 1024), splicer: null);
        var connection = await tcp.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        await using (connection)
        {
            connection.Transport.Output.Write(RelaySplices.Magic);
            connection.Transport.Output.Write(ticket);
            await connection.Transport.Output.FlushAsync(timeout.Token);
            var paired = await connection.Transport.Input.ReadAsync(timeout.Token);
            Assert.Equal(RelaySplices.Paired, paired.Buffer.FirstSpan[0]);
            connection.Transport.Input.AdvanceTo(paired.Buffer.GetPosition(1));

            using var credentials = new NodeCredentials(
                presenting,
                new CertificateFiles(Path.Combine(_mesh.Directory, presenting + ".pem"), Path.Combine(_mesh.Directory, presenting + ".key")),
                Path.Combine(_mesh.Directory, "ca.pem"),
                NullLogger.Instance);
            try
            {
                var link = await LinkDialer.HandshakeAsync(connection, credentials, "edge-b", NodeCredentials.LinkProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), timeout.Token);
                await using var session = link.Session;
                if (linked)
                {
                    // edge-b serves the link as edge-a's: a stream to its hosted endpoint echoes.
                    await Eventually.TrueAsync(() => nodeB.Metrics.Peer("edge-a").LinksUp == 1, "edge-b takes the link as edge-a's");
                }
                else
                {
                    // Under TLS 1.3 the client's handshake ends before the server has checked its certificate.
                    await Eventually.TrueAsync(() => session.Completion.IsCompleted, "edge-b ends the link");
                }
            }
            catch (Exception ex) when (!linked && ex is IOException or System.Security.Authentication.AuthenticationException)
            {
                // Refused during the handshake.
            }
        }

        if (!linked)
        {
            await Eventually.TrueAsync(() => nodeB.Metrics.LinksRefused(Forwarder.Metrics.LinkRefusal.Certificate) == 1, "edge-b refuses the certificate as not the offered node's");
            Assert.Equal((0L, 0L), (nodeB.Metrics.Peer("edge-a").LinksUp, nodeB.Metrics.Peer("edge-c").LinksUp));
        }
    }

    [Theory]
    [InlineData("terminate", "splice")]
    [InlineData("splice", "terminate")]
    public async Task WhenTheRelayOrTheFarNodeWillNotSplice_StreamsTakeTheTerminatingRelay(string relayMode, string farNodeMode)
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: relayMode);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-a", [relay], farNodeMode);
        await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
        await WaitRegisteredAsync(relay, nodeA, nodeB);

        for (var i = 0; i < 2; i++)
        {
            using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, $"terminated {i}");
        }

        var toB = nodeA.Metrics.Peer("edge-b");
        Assert.Equal((2, 2, 0), (toB.StreamsOut, toB.StreamsOutRelayed, toB.StreamsOutOver(LinkPath.RelaySpliced)));
        Assert.Equal((2L, 0L), (relay.Registry.Node("edge-a").StreamsOpened, relay.Registry.Node("edge-a").Splices));
        Assert.True(toB.LinkFailures >= 1, "the spliced link was tried and refused");
    }

    [Fact]
    public async Task AFarNodeWithoutTheSplice_IsOfferedNothingItCannotRefuse()
    {
        // What a node that predates splicing does with the offer: the relay's request kind is unknown to it, it closes the stream.
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");
        await using var asker = await HandNode.RegisterAsync(relay, "edge-c", _mesh.Directory);
        await using var old = await HandNode.RegisterAsync(relay, "edge-d", _mesh.Directory, answer: false);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (stream, status) = await TunnelHandshake.RequestAsync(asker.Session, new TunnelRequest(TunnelRequestKind.Splice, "edge-d", "link"), timeout.Token);
        Assert.Null(stream);
        Assert.NotEqual(TunnelStatus.Connected, status);
        await Eventually.TrueAsync(() => relay.Registry.Node("edge-c").StreamsActive == 0, "the cancelled rendezvous frees its place");
    }

    /// <summary>
    /// Until node A's spliced link to edge-b is up: the first stream starts it, and takes the
    /// terminating relay if it takes longer than the two seconds a first stream waits (a loaded box).
    /// </summary>
    private static async Task WaitSplicedAsync(RunningForwarder nodeA)
    {
        using (var first = await SocketClient.ConnectAsync(nodeA.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(first, "starts the spliced link");
        }

        var toB = nodeA.Metrics.Peer("edge-b");
        await Eventually.TrueAsync(() => toB.LinksUp == 1, "the spliced link comes up");
        if (toB.StreamsOutOver(LinkPath.RelaySpliced) == 0)
        {
            using var second = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(second, "over the spliced link now");
        }

        Assert.Equal(1, toB.StreamsOutOver(LinkPath.RelaySpliced));
    }

    private static Task WaitRegisteredAsync(RunningRelay relay, params RunningForwarder[] nodes)
        => Eventually.TrueAsync(() => nodes.All(n => n.Metrics.Relay(relay.Name).Up == 1), $"every node registered with {relay.Name}");

    /// <summary>Asks for a rendezvous as <paramref name="asker"/> with <paramref name="farName"/>; returns both tickets (the far one as its session was offered it).</summary>
    private static async Task<(byte[] Asker, byte[] Far)> RendezvousAsync(HandNode asker, HandNode far, string farName)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (stream, status) = await TunnelHandshake.RequestAsync(asker.Session, new TunnelRequest(TunnelRequestKind.Splice, farName, "link"), timeout.Token);
        Assert.Equal(TunnelStatus.Connected, status);
        await using (stream)
        {
            var field = await TunnelHandshake.ReadFieldAsync(stream!.Transport.Input, timeout.Token);
            Assert.True(SplicedRelayLinks.TryParseTicket(field, out _, out var askerTicket), $"a ticket: {field}");
            Assert.True(SplicedRelayLinks.TryParseTicket(await far.Offers.Reader.ReadAsync(timeout.Token), out _, out var farTicket));
            Assert.NotEqual(askerTicket, farTicket);
            return (askerTicket, farTicket);
        }
    }

    private static Task<SplicedSockets> PairAsync(IPEndPoint splicePort, (byte[] Asker, byte[] Far) tickets) => PairAsync(splicePort, tickets.Asker, tickets.Far);

    /// <summary>Presents both halves of a rendezvous and waits until each is told it is paired.</summary>
    private static async Task<SplicedSockets> PairAsync(IPEndPoint splicePort, byte[] askerTicket, byte[] farTicket)
    {
        var pair = new SplicedSockets(await PresentAsync(splicePort, askerTicket), await PresentAsync(splicePort, farTicket));
        Assert.Equal(RelaySplices.Paired, (await SocketClient.ReceiveExactlyAsync(pair.Asker, 1))[0]);
        Assert.Equal(RelaySplices.Paired, (await SocketClient.ReceiveExactlyAsync(pair.Far, 1))[0]);
        return pair;
    }

    private static async Task<Socket> PresentAsync(IPEndPoint splicePort, byte[] ticket)
    {
        var socket = await SocketClient.ConnectAsync(splicePort);
        await socket.SendAsync(RelaySplices.Magic.ToArray().Concat(ticket).ToArray(), SocketFlags.None);
        return socket;
    }

    private sealed record SplicedSockets(Socket Asker, Socket Far) : IDisposable
    {
        public void Dispose()
        {
            Asker.Dispose();
            Far.Dispose();
        }
    }
}
