using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Forwarder.Tests.Relay;

/// <summary>
/// Links a relay splices (<c>relay.mode: splice</c>): two nodes with no address for each other
/// run their own TLS link over two TCP connections the relay joins, so it carries only
/// ciphertext; tickets are one-time, bound to the pair and short-lived, and a bad one harms no
/// other pair; where the relay or the far node will not splice, streams take the terminating relay.
/// </summary>
public sealed class RelaySpliceTests : IDisposable
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

    // A slowloris on the splice port, which anyone can reach: a hundred connections trickling
    // their hellos a byte every 2 s (and coming back when closed) hold no thread and no place a
    // real node needs, and each is closed 5 s after its accept however it trickles (a deadline per
    // read would keep each 40 s).
    [Fact]
    public async Task TricklingHellos_HoldNoPlaceARealNodeNeeds_AndAreClosedOnTime()
    {
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory, mode: "splice");
        using var stop = new CancellationTokenSource();
        var longest = TimeSpan.Zero;
        var closedCount = 0;
        var trickling = Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var socket = await SocketClient.ConnectAsync(relay.SpliceEndPoint!);
                var opened = System.Diagnostics.Stopwatch.StartNew();
                var closed = socket.ReceiveAsync(new byte[64], SocketFlags.None);
                try
                {
                    while (!closed.IsCompleted && !stop.IsCancellationRequested)
                    {
                        await socket.SendAsync("F"u8.ToArray(), SocketFlags.None);
                        await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(2), stop.Token));
                    }
                }
                catch (SocketException)
                {
                    // Closed under a send.
                }

                if (!stop.IsCancellationRequested)
                {
                    lock (stop)
                    {
                        longest = opened.Elapsed > longest ? opened.Elapsed : longest;
                        closedCount++;
                    }
                }
            }
        })));

        try
        {
            await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-a", [relay]);
            await using var nodeA = await _mesh.StartNodeAAsync(backend.Address, linkAddress: null, [relay]);
            await WaitRegisteredAsync(relay, nodeA, nodeB);
            await WaitSplicedAsync(nodeA);
            using var client = await SocketClient.ConnectAsync(nodeA.EndPoint("front"));
            await SocketClient.AssertEchoAsync(client, "spliced beside a hundred slow hellos");
            Assert.True(nodeA.Metrics.Peer("edge-b").StreamsOutOver(LinkPath.RelaySpliced) >= 1, "the stream took the spliced link");
            await Eventually.TrueAsync(() => Volatile.Read(ref closedCount) >= 100, "every trickler was closed at least once");
        }
        finally
        {
            await stop.CancelAsync();
            await trickling.WaitAsync(TimeSpan.FromSeconds(60));
        }

        lock (stop)
        {
            Assert.True(longest < TimeSpan.FromSeconds(15), $"a trickling hello was held {longest.TotalSeconds:0.0} s though its ticket was due 5 s after its accept");
        }
    }

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

    // The real relay started under a limit of 256 descriptors (prlimit; lowering the limit of a
    // running process can leave the runtime without one it needs): three hundred silent
    // connections to the splice port run it out of descriptors with connections still waiting in
    // the backlog. The poll would find the listener ready at once
    // after each failed accept and spin a core; the relay backs off, logs once, and says when it
    // accepts again (the silent connections are closed 5 s after their accept).
    [Fact]
    public async Task OutOfDescriptors_TheSpliceAcceptLoopBacksOff_AndAcceptsAgain()
    {
        var path = Path.Combine(_mesh.Directory, "relay-fd.yaml");
        await File.WriteAllTextAsync(path, $"""
            relay:
              name: relay-1
              listen: '127.0.0.1:0'
              splicePort: 0
              certificate: {Path.Combine(_mesh.Directory, "relay-1.pem")}
              key: {Path.Combine(_mesh.Directory, "relay-1.key")}
              ca: {Path.Combine(_mesh.Directory, "ca.pem")}
            """);
        using var relay = ForwarderProcess.StartWithFileLimit(256, "relay", "--config", path);
        await relay.WaitForOutputAsync("splicing links on");
        var splicePort = new IPEndPoint(IPAddress.Loopback, int.Parse(System.Text.RegularExpressions.Regex.Match(relay.Output, @"splicing links on 127\.0\.0\.1:(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

        var silent = new List<Socket>();
        try
        {
            for (var i = 0; i < 300; i++)
            {
                silent.Add(await SocketClient.ConnectAsync(splicePort));
            }

            // Two seconds with connections in the backlog the relay cannot take.
            var before = CpuTime(relay.Id);
            var measured = System.Diagnostics.Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(2));
            var busy = CpuTime(relay.Id) - before;
            Assert.True(busy < measured.Elapsed * 0.25, $"the relay used {busy.TotalSeconds:0.00} s of CPU in {measured.Elapsed.TotalSeconds:0.00} s out of descriptors");
            await relay.WaitForOutputAsync("cannot accept (TooManyOpenSockets");
            await relay.WaitForOutputAsync("accepts connections again");

            // Once the first hellos time out the relay takes more of the backlog and may run out
            // again: the one starvation this test drives is the one before it said it accepts again.
            var output = relay.Output;
            var recovered = output.IndexOf("accepts connections again", StringComparison.Ordinal);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(output[..recovered], "cannot accept"));
        }
        finally
        {
            silent.ForEach(s => s.Dispose());
        }

        Assert.False(relay.HasExited, relay.Errors);
    }

    /// <summary>User plus system CPU time of process <paramref name="pid"/> so far.</summary>
    private static TimeSpan CpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

        // utime and stime, fields 14 and 15 of stat (11 and 12 after the name), in clock ticks of 1/100 s.
        var ticks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
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

    /// <summary>A node's relay session driven by the test: it takes (or, as an old node would, ignores) splice offers.</summary>
    private sealed class HandNode(YamuxSession session, Microsoft.AspNetCore.Connections.ConnectionContext link, Task serving) : IAsyncDisposable
    {
        public YamuxSession Session { get; } = session;

        /// <summary>The tickets offered to this node, PORT/TICKET.</summary>
        public System.Threading.Channels.Channel<string> Offers { get; } = System.Threading.Channels.Channel.CreateUnbounded<string>();

        public static async Task<HandNode> RegisterAsync(RunningRelay relay, string name, string folder, bool answer = true)
        {
            using var credentials = new NodeCredentials(
                name,
                new CertificateFiles(Path.Combine(folder, name + ".pem"), Path.Combine(folder, name + ".key")),
                Path.Combine(folder, "ca.pem"),
                NullLogger.Instance);
            var tcp = new TcpConnectionFactory(new TcpTransportOptions(), new Forwarder.Transports.Memory.PinnedBlockMemoryPool(64 * 1024), splicer: null);
            var dialled = await LinkDialer.DialAsync(tcp, relay.EndPoint, credentials, relay.Name, NodeCredentials.RelayProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), CancellationToken.None);
            var (stream, status) = await TunnelHandshake.RequestAsync(dialled.Session, new TunnelRequest(TunnelRequestKind.Register, name, string.Empty), CancellationToken.None);
            Assert.Equal(TunnelStatus.Connected, status);
            await stream!.DisposeAsync();
            var started = new TaskCompletionSource<HandNode>();
            var node = new HandNode(dialled.Session, dialled.Connection, ServeAsync(dialled.Session, started.Task, answer));
            started.SetResult(node);
            return node;
        }

        public async ValueTask DisposeAsync()
        {
            await Session.DisposeAsync();
            await link.DisposeAsync();
            await serving;
        }

        private static async Task ServeAsync(YamuxSession session, Task<HandNode> self, bool answer)
        {
            var node = await self;
            try
            {
                while (await session.AcceptStreamAsync(CancellationToken.None) is { } stream)
                {
                    await using (stream)
                    {
                        if (await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, CancellationToken.None) is { Kind: TunnelRequestKind.Spliced } offer && answer)
                        {
                            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
                            await stream.Transport.Output.FlushAsync();
                            node.Offers.Writer.TryWrite(offer.Target);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or Microsoft.AspNetCore.Connections.ConnectionResetException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
            {
                // The session ended with the test.
            }
        }
    }

    /// <summary>A TCP forwarder on 127.0.0.2 at <paramref name="target"/>'s port that keeps a copy of every byte it passes, both ways.</summary>
    private sealed class RecordingForwarder : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly MemoryStream _recorded = new();
        private readonly CancellationTokenSource _stopping = new();
        private readonly IPEndPoint _target;

        public RecordingForwarder(IPEndPoint target)
        {
            _target = target;
            _listener.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), target.Port));
            _listener.Listen(16);
            _ = AcceptAsync();
        }

        public byte[] Recorded
        {
            get
            {
                lock (_recorded)
                {
                    return _recorded.ToArray();
                }
            }
        }

        public void Dispose()
        {
            _stopping.Cancel();
            _listener.Dispose();
            _stopping.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (true)
            {
                Socket client;
                try
                {
                    client = await _listener.AcceptAsync(_stopping.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
                {
                    return;
                }

                _ = ForwardAsync(client);
            }
        }

        private async Task ForwardAsync(Socket client)
        {
            using (client)
            using (var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                try
                {
                    await upstream.ConnectAsync(_target);
                    await Task.WhenAll(CopyAsync(client, upstream), CopyAsync(upstream, client));
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    // Either side went: the test sees it at the node.
                }
            }
        }

        private async Task CopyAsync(Socket from, Socket to)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (await from.ReceiveAsync(buffer, SocketFlags.None) is var read and > 0)
                {
                    lock (_recorded)
                    {
                        // The first bytes to arrive first: the half's ticket leads the record.
                        _recorded.Write(buffer, 0, read);
                    }

                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                from.Close();
                to.Close();
            }
        }
    }
}
