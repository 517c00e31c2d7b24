using System.Net;
using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Udp;

/// <summary>udp listeners on loopback, with real udp backends and clients.</summary>
public sealed class UdpProxyTests
{
    private static string Config(string udp, string lb, params string[] endpoints) => $"""
        listeners:
          - {"{"} name: front, listen: '127.0.0.1:0', protocol: udp, service: back, udp: {"{"} {udp} {"}"} {"}"}
        services:
          back:
            lb: {"{"} policy: {lb} {"}"}
            endpoints:
        {string.Join("\n", endpoints.Select(e => $"      - address: {e}"))}
        """;

    [Fact]
    public async Task SeveralClients_EachGetTheirOwnReplies()
    {
        await using var backend = new UdpTestBackend("a");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "round_robin", backend.Address));
        var clients = Enumerable.Range(0, 5).Select(_ => new UdpTestClient(forwarder.EndPoint("front"))).ToArray();
        try
        {
            for (var round = 0; round < 3; round++)
            {
                // All ask before any reads, so the replies are in flight together.
                await Task.WhenAll(clients.Select((c, i) => c.SendAsync(System.Text.Encoding.UTF8.GetBytes($"client{i}-round{round}"))));
                for (var i = 0; i < clients.Length; i++)
                {
                    Assert.Equal($"a:client{i}-round{round}", await clients[i].ReceiveAsync());
                }
            }

            var metrics = forwarder.Metrics.Udp("front");
            // The proxy counts a reply after its send returns, so the client may read it first.
            var bytesOut = "a:client0-round0".Length * 15L;
            await Eventually.TrueAsync(
                () => metrics.DatagramsOut == 15 && forwarder.Metrics.Listener("front").BytesSent == bytesOut,
                "every reply counted");
            Assert.Equal((5, 5), (metrics.Active, metrics.Total));
            Assert.Equal(15, metrics.DatagramsIn);
            Assert.Equal(5, backend.Peers.Count);
            var text = PrometheusText.Render(forwarder.Metrics, forwarder.Runtime);
            Assert.Contains("forwarder_udp_sessions_active{listener=\"front\"} 5\n", text, StringComparison.Ordinal);
            Assert.Contains("forwarder_udp_datagrams_total{listener=\"front\",direction=\"tx\"} 15\n", text, StringComparison.Ordinal);
            Assert.Contains("forwarder_udp_datagrams_dropped_total{listener=\"front\",reason=\"session_limit\"} 0\n", text, StringComparison.Ordinal);
        }
        finally
        {
            Array.ForEach(clients, c => c.Dispose());
        }
    }

    [Fact]
    public async Task Ipv6Clients_OnADualStackListener_AreSessionsOfTheirOwn()
    {
        await using var backend = new UdpTestBackend("a");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "round_robin", backend.Address).Replace("'127.0.0.1:0'", "'*:0'", StringComparison.Ordinal));
        var port = forwarder.EndPoint("front").Port;
        using var v6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
        v6.Connect(new IPEndPoint(IPAddress.IPv6Loopback, port));
        using var v4 = new UdpTestClient(new IPEndPoint(IPAddress.Loopback, port));
        var reply = new byte[64];
        using var deadline = new CancellationTokenSource(Eventually.DefaultTimeout);

        await v6.SendAsync("six"u8.ToArray().AsMemory(), SocketFlags.None);
        var length = await v6.ReceiveAsync(reply.AsMemory(), SocketFlags.None, deadline.Token);
        Assert.Equal("a:four", await v4.AskAsync("four"));

        Assert.Equal("a:six", System.Text.Encoding.UTF8.GetString(reply, 0, length));
        Assert.Equal(2, forwarder.Metrics.Udp("front").Active);
    }

    [Fact]
    public async Task IdleTimeout_EndsTheSession_AndTheNextDatagramOpensANewOne()
    {
        await using var backend = new UdpTestBackend("a");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 200ms", "round_robin", backend.Address));
        using var client = new UdpTestClient(forwarder.EndPoint("front"));
        var metrics = forwarder.Metrics.Udp("front");

        Assert.Equal("a:one", await client.AskAsync("one"));
        await Eventually.TrueAsync(() => metrics.Ends(UdpSessionEnd.Idle) == 1, "the idle session ended");
        Assert.Equal(0, metrics.Active);

        Assert.Equal("a:two", await client.AskAsync("two"));
        Assert.Equal((1, 2), (metrics.Active, metrics.Total));
        Assert.Equal(2, backend.Peers.Count);
    }

    [Fact]
    public async Task HashOnSource_SameClientAddress_SameEndpointAcrossSessions()
    {
        await using var a = new UdpTestBackend("a");
        await using var b = new UdpTestBackend("b");
        await using var c = new UdpTestBackend("c");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "ring_hash", a.Address, b.Address, c.Address));
        var answers = new Dictionary<int, HashSet<string>>();
        for (var host = 2; host < 22; host++)
        {
            answers[host] = [];
            for (var i = 0; i < 3; i++)
            {
                // A new socket each time: a new source port, so a new session keyed on the same address.
                using var client = new UdpTestClient(forwarder.EndPoint("front"), IPAddress.Parse($"127.0.0.{host}"));
                answers[host].Add((await client.AskUntilAnsweredAsync("who"))[..1]);
            }
        }

        Assert.All(answers.Values, set => Assert.Single(set));
        Assert.True(answers.Values.Select(s => s.Single()).Distinct().Count() > 1, "twenty addresses spread over more than one endpoint");
        Assert.Equal(60, forwarder.Metrics.Udp("front").Total);
    }

    [Fact]
    public async Task Reload_ReplacingTheEndpoint_EndsItsSessions_AndTrafficMoves()
    {
        await using var a = new UdpTestBackend("a");
        await using var b = new UdpTestBackend("b");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "round_robin", a.Address));
        using var client = new UdpTestClient(forwarder.EndPoint("front"));
        Assert.Equal("a:before", await client.AskAsync("before"));

        Assert.True(await forwarder.ReloadAsync(Config("idleTimeout: 30s", "round_robin", b.Address)));

        var metrics = forwarder.Metrics.Udp("front");
        Assert.Equal(1, metrics.Ends(UdpSessionEnd.Reload));
        Assert.Equal("b:after", await client.AskAsync("after"));
        Assert.Equal((1, 2), (metrics.Active, metrics.Total));
    }

    [Fact]
    public async Task Reload_KeepingTheEndpoint_KeepsTheSession()
    {
        await using var a = new UdpTestBackend("a");
        await using var b = new UdpTestBackend("b");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "round_robin", a.Address));
        var front = forwarder.EndPoint("front");
        using var client = new UdpTestClient(front);
        Assert.Equal("a:before", await client.AskAsync("before"));

        Assert.True(await forwarder.ReloadAsync(Config("idleTimeout: 20s", "round_robin", a.Address, b.Address)));

        Assert.Equal(front, forwarder.EndPoint("front"));
        Assert.Equal("a:after", await client.AskAsync("after"));
        Assert.Equal((1, 1), (forwarder.Metrics.Udp("front").Active, forwarder.Metrics.Udp("front").Total));
        Assert.Single(a.Peers);
    }

    [Fact]
    public async Task LargestAndEmptyDatagrams_AreForwarded_AndOtherClientsAreUnharmed()
    {
        await using var backend = new UdpTestBackend("a");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "round_robin", backend.Address));
        using var big = new UdpTestClient(forwarder.EndPoint("front"));
        using var other = new UdpTestClient(forwarder.EndPoint("front"));

        // 65,507 bytes: the largest payload an IPv4 udp datagram can carry.
        await big.SendAsync(new byte[65_507]);
        Assert.Equal("a:#65507", await big.ReceiveAsync());
        await big.SendAsync([]);
        Assert.Equal("a:", await big.ReceiveAsync());
        Assert.Equal("a:fine", await other.AskAsync("fine"));
        Assert.Equal("a:still", await big.AskAsync("still"));
    }

    [Fact]
    public async Task UnreachableEndpoint_IcmpEndsTheSession()
    {
        // A port nothing listens on: the kernel answers ICMP port unreachable.
        int closedPort;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            closedPort = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }

        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s", "round_robin", $"127.0.0.1:{closedPort}"));
        using var client = new UdpTestClient(forwarder.EndPoint("front"));
        var metrics = forwarder.Metrics.Udp("front");

        await client.SendAsync([1, 2, 3]);
        await Eventually.TrueAsync(() => metrics.Ends(UdpSessionEnd.Unreachable) == 1, "the session ended on ICMP unreachable");
        Assert.Equal(0, metrics.Active);
    }

    [Fact]
    public async Task SessionLimit_DropsNewClients_AndCountsThem()
    {
        await using var backend = new UdpTestBackend("a");
        await using var forwarder = await RunningForwarder.StartAsync(Config("idleTimeout: 30s, maxSessions: 2", "round_robin", backend.Address));
        using var first = new UdpTestClient(forwarder.EndPoint("front"));
        using var second = new UdpTestClient(forwarder.EndPoint("front"));
        using var third = new UdpTestClient(forwarder.EndPoint("front"));
        Assert.Equal("a:1", await first.AskAsync("1"));
        Assert.Equal("a:2", await second.AskAsync("2"));

        await third.SendAsync([3]);
        var metrics = forwarder.Metrics.Udp("front");
        await Eventually.TrueAsync(() => metrics.Drops(UdpDrop.SessionLimit) == 1, "the third client's datagram was dropped");
        Assert.Equal("a:again", await first.AskAsync("again"));
        Assert.Equal(2, metrics.Active);
    }
}
