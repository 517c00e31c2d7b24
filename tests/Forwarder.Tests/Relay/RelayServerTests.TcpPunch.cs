using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Mux;
using Forwarder.Tunnels;

namespace Forwarder.Tests.Relay;

/// <content>
/// The relay's introductions for TCP simultaneous open, with nodes played by this test over
/// their sessions: each gets the address the other's token connection came from; a node can
/// introduce only itself (the asker is its session's node, and a far node cannot pass off another
/// node's token as its own); a token answers once, only over the protocol it came by; and a
/// rendezvous connection that sends anything but a token is closed.
/// </content>
public sealed partial class RelayServerTests
{
    [Fact]
    public async Task TcpPunch_TellsEachNodeTheOthersTcpAddress_OnceForAToken()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var (b, bLink) = await DialAndRegisterAsync(relay, "edge-b");
        await using (aLink)
        await using (a)
        await using (bLink)
        await using (b)
        {
            var bHello = NewTcpToken(out var bTokenText);
            Socket? bHold = null;
            var introductions = new List<TunnelRequest>();
            var answering = AnswerIntroductionsAsync(b, async request =>
            {
                introductions.Add(request);
                bHold = await SendTokenAsync(relay, bHello);
                return bTokenText;
            });

            var aHello = NewTcpToken(out var aTokenText);
            using var aHold = await SendTokenAsync(relay, aHello);
            var (status, far) = await AskTcpPunchAsync(a, "edge-b", aTokenText);

            Assert.Equal(TunnelStatus.Connected, status);
            Assert.Equal(bHold!.LocalEndPoint!.ToString(), far);
            var introduction = Assert.Single(introductions);
            Assert.Equal((TunnelRequestKind.TcpPunched, "edge-a", aHold.LocalEndPoint!.ToString()), (introduction.Kind, introduction.Node, introduction.Target));

            // The token is spent: asked again, the relay has no address for it.
            Assert.Equal(TunnelStatus.Unreachable, (await AskTcpPunchAsync(a, "edge-b", aTokenText)).Status);
            Assert.Single(introductions);
            bHold.Dispose();
            await b.DisposeAsync();
            await answering;
        }
    }

    [Fact]
    public async Task TcpPunch_ForgedOrMisdirectedTokensAndNames_AreRefused()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var (b, bLink) = await DialAndRegisterAsync(relay, "edge-b");
        await using (aLink)
        await using (a)
        await using (bLink)
        await using (b)
        {
            // Introducing itself to itself, or to a node that is not registered: no such far node.
            using (await SendTokenAsync(relay, NewTcpToken(out var text)))
            {
                Assert.Equal(TunnelStatus.UnknownNode, (await AskTcpPunchAsync(a, "edge-a", text)).Status);
            }

            using (await SendTokenAsync(relay, NewTcpToken(out var text)))
            {
                Assert.Equal(TunnelStatus.UnknownNode, (await AskTcpPunchAsync(a, "edge-z", text)).Status);
            }

            // A token sent over UDP stands for no TCP address.
            using (var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            {
                var datagram = new byte[RelayRendezvous.Magic.Length + RelayRendezvous.TokenLength];
                RelayRendezvous.Magic.CopyTo(datagram);
                RandomNumberGenerator.Fill(datagram.AsSpan(RelayRendezvous.Magic.Length));
                var text = Convert.ToHexStringLower(datagram, RelayRendezvous.Magic.Length, RelayRendezvous.TokenLength);
                await udp.SendToAsync(datagram, relay.EndPoint);
                Assert.Equal(TunnelStatus.Unreachable, (await AskTcpPunchAsync(a, "edge-b", text)).Status);
            }

            // The far node answering with the asker's own token (to hand the asker its own address
            // as the far node's) gets nothing: that token was taken by the asker's request.
            var aHello = NewTcpToken(out var aTokenText);
            var answering = AnswerIntroductionsAsync(b, _ => Task.FromResult(aTokenText));
            using (await SendTokenAsync(relay, aHello))
            {
                Assert.Equal(TunnelStatus.Unreachable, (await AskTcpPunchAsync(a, "edge-b", aTokenText)).Status);
            }

            await b.DisposeAsync();
            await answering;
        }
    }

    [Fact]
    public async Task TcpRendezvous_ThatSendsNoToken_IsClosed_AndNodesStillRegister()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        foreach (var garbage in new[] { "FWRX0123456789abcdef"u8.ToArray(), "FWRT01"u8.ToArray() })
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(relay.EndPoint);
            await socket.SendAsync(garbage, SocketFlags.None);
            if (garbage.Length < 20)
            {
                // Too short: the relay waits for the rest until the node closes its side.
                socket.Shutdown(SocketShutdown.Send);
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            Assert.Equal(0, await socket.ReceiveAsync(new byte[16], SocketFlags.None, timeout.Token));
        }

        var (session, link) = await DialAndRegisterAsync(relay, "edge-a");
        await using (link)
        await using (session)
        {
            Assert.NotNull(relay.Registry.Registered("edge-a"));
        }
    }

    // Token connections come before any certificate: each would hold a relay socket for the
    // tokens' 30 s lifetime. One source gets 16 held at once, the rest are closed at once; a
    // hello that stops short is closed after 3 s rather than the TLS handshake's 10; and other
    // sources and real nodes are unharmed.
    [Fact]
    public async Task TcpRendezvous_FromOneSource_IsHeldAtMostSixteenAtOnce_AndAStalledHelloIsClosedSoon()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var held = new List<Socket>();
        try
        {
            for (var i = 0; i < 16; i++)
            {
                held.Add(await SendTokenAsync(relay, NewTcpToken(out _)));
            }

            // The relay serves connections concurrently: the seventeenth must come after the sixteen are held.
            await Eventually.TrueAsync(() => relay.TcpTokens.Unclaimed == 16, "the sixteen tokens are held");
            using (var seventeenth = await SendTokenAsync(relay, NewTcpToken(out _)))
            {
                Assert.True(await ClosedWithinAsync(seventeenth, TimeSpan.FromSeconds(10)), "a seventeenth connection from one source is closed at once");
            }

            using (var stalled = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                stalled.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.3"), 0));
                await stalled.ConnectAsync(relay.EndPoint);
                await stalled.SendAsync("FWRT01"u8.ToArray(), SocketFlags.None);
                var waited = Stopwatch.StartNew();
                Assert.True(await ClosedWithinAsync(stalled, TimeSpan.FromSeconds(30)), "a stalled hello is closed");
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(8), $"a stalled hello is closed after 3 s, not the TLS handshake's 10 ({waited.Elapsed.TotalSeconds:0.0} s)");
            }

            // Another source's token connection is held, and introduces its node.
            using var other = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            other.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
            await other.ConnectAsync(relay.EndPoint);
            await other.SendAsync(NewTcpToken(out var otherToken), SocketFlags.None);
            Assert.False(await ClosedWithinAsync(other, TimeSpan.FromSeconds(1)), "another source's token connection is held");
            var (session, link) = await DialAndRegisterAsync(relay, "edge-a");
            await using (link)
            await using (session)
            {
                Assert.NotNull(relay.Registry.Registered("edge-a"));
                Assert.Equal(TunnelStatus.UnknownNode, (await AskTcpPunchAsync(session, "edge-z", otherToken)).Status);
            }
        }
        finally
        {
            held.ForEach(s => s.Dispose());
        }

        // Closed holds free their places.
        await Eventually.TrueAsync(
            async () =>
            {
                using var again = await SendTokenAsync(relay, NewTcpToken(out _));
                return !await ClosedWithinAsync(again, TimeSpan.FromMilliseconds(500));
            },
            "the source's closed holds free its places");
    }

    // Each introduction has the far node open sockets and probe for seconds: a node asking for
    // thirty at once gets its ten a second, the rest are refused as over its limit, and another
    // node's introductions are its own.
    [Fact]
    public async Task Introductions_AreRateLimitedPerAsker()
    {
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        var (c, cLink) = await DialAndRegisterAsync(relay, "edge-c");
        await using (aLink)
        await using (a)
        await using (cLink)
        await using (c)
        {
            // The bucket holds 10 and refills 10/s: on a loaded box the 30 asks spread over a while,
            // so at most 10 plus what refilled while they were asked may pass (measured, not assumed).
            var started = Stopwatch.GetTimestamp();
            var asked = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => AskTcpPunchAsync(a, "edge-b", NewToken())));
            var elapsed = Stopwatch.GetElapsedTime(started);
            var limited = asked.Count(r => r.Status == TunnelStatus.Limited);
            var mostPassed = RelayNode.IntroductionsPerSecond * (1 + elapsed.TotalSeconds);
            Assert.True(
                30 - limited <= mostPassed && limited < 30,
                $"{limited} of 30 introductions asked within {elapsed.TotalSeconds:0.00} s refused as over the asker's limit (at most {mostPassed:0.0} may pass)");
            Assert.All(asked.Where(r => r.Status != TunnelStatus.Limited), r => Assert.Equal(TunnelStatus.Unreachable, r.Status));
            Assert.Equal(TunnelStatus.Unreachable, (await AskTcpPunchAsync(c, "edge-b", NewToken())).Status);
            Assert.Equal((limited, 0L), (relay.Registry.Node("edge-a").IntroductionsLimited, relay.Registry.Node("edge-a").StreamsRefused));

            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
            Assert.Contains($"forwarder_relay_introductions_limited_total{{node=\"edge-a\",by=\"relay\"}} {limited}", metrics, StringComparison.Ordinal);
        }

        static string NewToken()
        {
            NewTcpToken(out var text);
            return text;
        }
    }

    // Each TCP introduction costs the far node sockets and seconds of probing: a real node answers
    // at most two of one peer at once and refuses the rest as limited. Its first relay never
    // answers, so each answer spends 3 s sending that relay its token and the five overlap.
    [Fact]
    public async Task ANode_AnswersAtMostTwoTcpIntroductionsOfOnePeerAtOnce()
    {
        using var dead = new SilentEndpoint();
        await using var backend = TcpTestServer.Echo();
        await using var relay = await RunningRelay.StartAsync(_mesh.Directory);
        await using var nodeB = await _mesh.StartNodeBAsync(backend.Address, "edge-a", [relay], deadRelay: new IPEndPoint(IPAddress.Loopback, dead.Port));
        await Eventually.TrueAsync(() => nodeB.Metrics.Relay(relay.Name).Up == 1, "edge-b registered");
        var (a, aLink) = await DialAndRegisterAsync(relay, "edge-a");
        await using (aLink)
        await using (a)
        {
            var holds = new List<Socket>();
            var tokens = new List<string>();
            for (var i = 0; i < 5; i++)
            {
                holds.Add(await SendTokenAsync(relay, NewTcpToken(out var token)));
                tokens.Add(token);
            }

            try
            {
                var asked = await Task.WhenAll(tokens.Select(t => AskTcpPunchAsync(a, "edge-b", t)));
                Assert.Equal(
                    (2, 3),
                    (asked.Count(r => r.Status == TunnelStatus.Connected), asked.Count(r => r.Status == TunnelStatus.Limited)));
                Assert.Equal((3L, 0L), (relay.Registry.Node("edge-a").IntroductionsFarLimited, relay.Registry.Node("edge-a").IntroductionsLimited));
            }
            finally
            {
                holds.ForEach(h => h.Dispose());
            }
        }
    }

    /// <summary>True when the relay closes <paramref name="socket"/> within <paramref name="wait"/>; false when it is still open then.</summary>
    private static async Task<bool> ClosedWithinAsync(Socket socket, TimeSpan wait)
    {
        using var timeout = new CancellationTokenSource(wait);
        try
        {
            while (await socket.ReceiveAsync(new byte[16], SocketFlags.None, timeout.Token) > 0)
            {
                // Nothing is sent on a rendezvous connection; the close is what counts.
            }

            return true;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [Fact]
    public async Task RendezvousTokens_AnswerOnce_AndExpire()
    {
        var clock = new ManualClock();
        var tokens = new RendezvousTokens(clock);
        var seen = new IPEndPoint(IPAddress.Parse("198.18.1.2"), 40001);

        tokens.Note("once", seen);
        Assert.Equal(seen, await tokens.SeenAsync("once", TimeSpan.Zero, CancellationToken.None));
        Assert.Null(await tokens.SeenAsync("once", TimeSpan.FromMilliseconds(50), CancellationToken.None));

        tokens.Note("late", seen);
        clock.Advance(RendezvousTokens.Lifetime + TimeSpan.FromSeconds(1));
        Assert.Null(await tokens.SeenAsync("late", TimeSpan.FromMilliseconds(50), CancellationToken.None));
        Assert.Equal(0, tokens.Unclaimed);
    }

    private static byte[] NewTcpToken(out string text)
    {
        var hello = new byte[RelayServer.TcpMagic.Length + RelayRendezvous.TokenLength];
        RelayServer.TcpMagic.CopyTo(hello);
        RandomNumberGenerator.Fill(hello.AsSpan(RelayServer.TcpMagic.Length));
        text = Convert.ToHexStringLower(hello, RelayServer.TcpMagic.Length, RelayRendezvous.TokenLength);
        return hello;
    }

    /// <summary>A token connection to the relay (from <paramref name="from"/>, else the relay's own loopback address), held open as a node holds it during a punch.</summary>
    private static async Task<Socket> SendTokenAsync(RunningRelay relay, byte[] hello, IPAddress? from = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (from is not null)
        {
            socket.Bind(new IPEndPoint(from, 0));
        }

        await socket.ConnectAsync(relay.EndPoint);
        await socket.SendAsync(hello, SocketFlags.None);
        return socket;
    }

    private static async Task<(TunnelStatus? Status, string? Far)> AskTcpPunchAsync(YamuxSession session, string far, string token)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.TcpPunch, far, token), timeout.Token);
        if (stream is null)
        {
            return (status, null);
        }

        await using (stream)
        {
            return (status, await TunnelHandshake.ReadFieldAsync(stream.Transport.Input, timeout.Token));
        }
    }

    /// <summary>Plays a far node: each introduction the relay brings is answered Connected and the token <paramref name="answer"/> gives, until the session ends.</summary>
    private static async Task AnswerIntroductionsAsync(YamuxSession session, Func<TunnelRequest, Task<string>> answer)
    {
        try
        {
            while (await session.AcceptStreamAsync(CancellationToken.None) is { } stream)
            {
                await using (stream)
                {
                    var request = await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, CancellationToken.None);
                    var token = await answer(request!.Value);
                    TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
                    TunnelHandshake.WriteField(stream.Transport.Output, token);
                    await stream.Transport.Output.FlushAsync();
                }
            }
        }
        catch (Exception ex) when (ex is YamuxSessionClosedException or ObjectDisposedException or IOException or OperationCanceledException)
        {
            // The test ended the session.
        }
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _now;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Volatile.Read(ref _now);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _now, by.Ticks);
    }
}
