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
/// their sessions: the relay issues each its token, and each gets the address the other's token
/// connection came from; a token the relay never issued, or one bound already to another
/// address, holds nothing; a node can introduce only itself (the asker is its session's node,
/// and a far node cannot pass off another node's token as its own); a token answers once, only
/// over the protocol it came by; and a rendezvous connection that sends anything but a token is closed.
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
            Socket? bHold = null;
            var introductions = new List<TunnelRequest>();
            var answering = AnswerIntroductionsAsync(b, async request =>
            {
                introductions.Add(request);
                bHold = await SendTokenAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, Introduced(request).Token)!);
            });

            Socket? aHold = null;
            string? aToken = null;
            var (status, far) = await AskTcpPunchAsync(a, "edge-b", async token =>
            {
                aToken = token;
                aHold = await SendTokenAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, token)!);
            });

            Assert.Equal(TunnelStatus.Connected, status);
            Assert.Equal(bHold!.LocalEndPoint!.ToString(), far);
            var introduction = Assert.Single(introductions);
            Assert.Equal((TunnelRequestKind.TcpPunched, "edge-a", aHold!.LocalEndPoint!.ToString()), (introduction.Kind, introduction.Node, Introduced(introduction).Asker));
            Assert.NotEqual(aToken, Introduced(introduction).Token);

            // The asker's token sent again from another port (a racer's): closed, its address not taken.
            using (var racer = await SendTokenAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, aToken!)!))
            {
                Assert.True(await ClosedWithinAsync(racer, TimeSpan.FromSeconds(20)), "a token bound already holds nothing for another address");
            }

            Assert.Equal((1L, 0L), (relay.TcpTokens.RefusedRebound, relay.TcpTokens.RefusedUnknown));
            aHold.Dispose();
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
            // Introducing itself to itself, or to a node that is not registered: no such far node, no token.
            Assert.Equal(TunnelStatus.UnknownNode, (await AskTcpPunchAsync(a, "edge-a", token => throw new InvalidOperationException("no token is issued"))).Status);
            Assert.Equal(TunnelStatus.UnknownNode, (await AskTcpPunchAsync(a, "edge-z", token => throw new InvalidOperationException("no token is issued"))).Status);

            // A forged token (one the relay never issued) is closed at once and counted.
            using (var forged = await SendTokenAsync(relay, NewTcpToken(out _), IPAddress.Parse("127.0.0.2")))
            {
                Assert.True(await ClosedWithinAsync(forged, TimeSpan.FromSeconds(20)), "a token the relay never issued holds nothing");
            }

            Assert.Equal(1L, relay.TcpTokens.RefusedUnknown);

            // A TCP token sent over UDP stands for no TCP address.
            using (var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            {
                Assert.Equal(TunnelStatus.Unreachable, (await AskTcpPunchAsync(a, "edge-b", token => udp.SendToAsync(RelayRendezvous.Message(RelayRendezvous.Magic, token)!, relay.EndPoint))).Status);
            }

            // The far node answering with the asker's token instead of its own (to hand the asker
            // its own address as the far node's) gets nothing: that token is bound, and not its.
            Socket? aHold = null;
            Socket? bHold = null;
            string? aToken = null;
            var answering = AnswerIntroductionsAsync(b, async _ => bHold = await SendTokenAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, aToken!)!, IPAddress.Parse("127.0.0.4")));
            var asked = await AskTcpPunchAsync(a, "edge-b", async token =>
            {
                aToken = token;
                aHold = await SendTokenAsync(relay, RelayRendezvous.Message(RelayServer.TcpMagic, token)!);
            });
            Assert.Equal(TunnelStatus.Unreachable, asked.Status);
            Assert.True(await ClosedWithinAsync(bHold!, TimeSpan.FromSeconds(20)), "the asker's token binds nothing for the far node");
            Assert.Equal(1L, relay.TcpTokens.RefusedRebound);
            aHold?.Dispose();
            bHold?.Dispose();

            // The TCP token sent over UDP above was unknown there.
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(new Uri(relay.AdminAddress, "/metrics"));
            Assert.Contains("forwarder_relay_rendezvous_tokens_refused_total{protocol=\"tcp\",reason=\"unknown\"} 1\n", metrics, StringComparison.Ordinal);
            Assert.Contains("forwarder_relay_rendezvous_tokens_refused_total{protocol=\"tcp\",reason=\"rebound\"} 1\n", metrics, StringComparison.Ordinal);
            Assert.Contains("forwarder_relay_rendezvous_tokens_refused_total{protocol=\"udp\",reason=\"unknown\"} ", metrics, StringComparison.Ordinal);
            Assert.True(relay.Registry.UdpTokens!.RefusedUnknown >= 1, "the TCP token sent over UDP is unknown there");

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
                held.Add(await SendTokenAsync(relay, IssuedTcpHello(relay, $"edge-{i}")));
            }

            // The relay serves connections concurrently: the seventeenth must come after the sixteen are held.
            await Eventually.TrueAsync(() => relay.Server.Connections == 16, "the sixteen tokens are held");
            using (var seventeenth = await SendTokenAsync(relay, IssuedTcpHello(relay, "edge-16")))
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
            await other.SendAsync(IssuedTcpHello(relay, "edge-o", out var otherToken), SocketFlags.None);
            Assert.False(await ClosedWithinAsync(other, TimeSpan.FromSeconds(1)), "another source's token connection is held");
            Assert.Equal(other.LocalEndPoint, await relay.TcpTokens.SeenAsync(otherToken, "edge-o", TimeSpan.FromSeconds(30), CancellationToken.None));
            var (session, link) = await DialAndRegisterAsync(relay, "edge-a");
            await using (link)
            await using (session)
            {
                Assert.NotNull(relay.Registry.Registered("edge-a"));
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
                using var again = await SendTokenAsync(relay, IssuedTcpHello(relay, "edge-again"));
                return !await ClosedWithinAsync(again, TimeSpan.FromMilliseconds(500));
            },
            "the source's closed holds free its places");
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

        var once = tokens.Issue("edge-a")!;
        Assert.True(tokens.Note(once, seen));
        Assert.Equal(seen, await tokens.SeenAsync(once, "edge-a", TimeSpan.Zero, CancellationToken.None));
        Assert.Null(await tokens.SeenAsync(once, "edge-a", TimeSpan.FromMilliseconds(50), CancellationToken.None));

        var late = tokens.Issue("edge-a")!;
        clock.Advance(RendezvousTokens.Lifetime + TimeSpan.FromSeconds(1));
        Assert.False(tokens.Note(late, seen));
        Assert.Null(await tokens.SeenAsync(late, "edge-a", TimeSpan.FromMilliseconds(50), CancellationToken.None));
        Assert.Equal(1L, tokens.RefusedUnknown);
    }

    /// <summary>A hello with a token the relay never issued.</summary>
    private static byte[] NewTcpToken(out string text)
    {
        var hello = new byte[RelayServer.TcpMagic.Length + RelayRendezvous.TokenLength];
        RelayServer.TcpMagic.CopyTo(hello);
        RandomNumberGenerator.Fill(hello.AsSpan(RelayServer.TcpMagic.Length));
        text = Convert.ToHexStringLower(hello, RelayServer.TcpMagic.Length, RelayRendezvous.TokenLength);
        return hello;
    }

    /// <summary>The hello of a token the relay issued <paramref name="node"/> (never asked for by that node here).</summary>
    private static byte[] IssuedTcpHello(RunningRelay relay, string node) => IssuedTcpHello(relay, node, out _);

    private static byte[] IssuedTcpHello(RunningRelay relay, string node, out string token)
    {
        token = relay.TcpTokens.Issue(node)!;
        return RelayRendezvous.Message(RelayServer.TcpMagic, token)!;
    }

    /// <summary>An introduction's target: the asker's address, and the token issued to the far node.</summary>
    private static (string Asker, string Token) Introduced(TunnelRequest request)
    {
        var slash = request.Target.LastIndexOf('/');
        return (request.Target[..slash], request.Target[(slash + 1)..]);
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

    /// <summary>
    /// Asks for a TCP introduction to <paramref name="far"/> as a node does: the relay's first
    /// answer is the token it issued, which <paramref name="send"/> (if any) sends; the second, the
    /// far node's address or why not.
    /// </summary>
    private static async Task<(TunnelStatus? Status, string? Far)> AskTcpPunchAsync(YamuxSession session, string far, Func<string, Task>? send = null)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (stream, status) = await TunnelHandshake.RequestAsync(session, new TunnelRequest(TunnelRequestKind.TcpPunch, far, "-"), timeout.Token);
        if (stream is null)
        {
            return (status, null);
        }

        await using (stream)
        {
            var token = await TunnelHandshake.ReadFieldAsync(stream.Transport.Input, timeout.Token);
            Assert.NotNull(token);
            if (send is not null)
            {
                await send(token);
            }

            status = await TunnelHandshake.ReadStatusAsync(stream.Transport.Input, timeout.Token);
            return status == TunnelStatus.Connected ? (status, await TunnelHandshake.ReadFieldAsync(stream.Transport.Input, timeout.Token)) : (status, null);
        }
    }

    /// <summary>Plays a far node: each introduction the relay brings is given to <paramref name="answer"/> and then answered Connected, until the session ends.</summary>
    private static async Task AnswerIntroductionsAsync(YamuxSession session, Func<TunnelRequest, Task> answer)
    {
        try
        {
            while (await session.AcceptStreamAsync(CancellationToken.None) is { } stream)
            {
                await using (stream)
                {
                    var request = await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, CancellationToken.None);
                    await answer(request!.Value);
                    TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
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
