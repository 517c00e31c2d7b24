using System.Net;
using System.Net.Sockets;
using Forwarder.Cluster;
using Forwarder.Configuration;
using Forwarder.Dns;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging.Abstractions;
using Forwarder.Tests.Infrastructure;
using Xunit.Abstractions;
using static Forwarder.Tests.Dns.DnsForwardingTests;

namespace Forwarder.Tests.Dns;

/// <summary>
/// Answering a cluster name, or a cached upstream answer, must not allocate: the question is
/// looked up by its wire bytes, buffers and the client address are reused.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class DnsSteadyStateAllocationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("web.default.svc.cluster.local")]
    [InlineData("www.example.org")]
    public async Task Queries_AllocateNothingPerAnswer(string name)
    {
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await RunningForwarder.StartAsync(DnsTestKit.Config(null, [upstream.EndPoint], admin: false));
        var service = new ClusterService("default/web:80", "default", "web", [DnsTestKit.ClusterIp], 80, "TCP", null, [], "http");
        forwarder.Service<ClusterStateStore>().TrySet(new ClusterState([service]), out _);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 3_000 };
        client.Connect(forwarder.Service<DnsServer>().EndPoint!);
        var query = RawQuery(7, name, 1);
        var reply = new byte[512];

        // Warm up (zone built, answer cached, JIT settled), then the quietest of ten windows.
        var (perQuery, perSecond) = await SteadyStateAllocations.MeasureAsync(count => Queries(client, query, reply, count), windows: 10);

        output.WriteLine($"{name}: {perQuery:F2} bytes allocated per query, {perSecond:F0} queries/s from one synchronous client");
        Assert.Equal(1, upstream.Queries(name) + (name.EndsWith(".cluster.local", StringComparison.Ordinal) ? 1 : 0));
        // Process-wide, so another thread's allocation (a thread the pool adds) can show; one object per query would be 24 bytes or more.
        Assert.True(perQuery < 24, $"{perQuery:F2} bytes allocated per query");
    }

    /// <summary>The same, exactly: the handler runs on this thread, so its own allocations are all that is counted.</summary>
    [Fact]
    public void Handler_ClusterAndCachedAnswers_AllocateNothing()
    {
        var metrics = new DnsMetrics();
        var time = TimeProvider.System;
        var store = new ClusterStateStore(new ConfigSource(null, ConfigLoader.Parse("listeners: []", "f.yaml")), NullLogger<ClusterStateStore>.Instance);
        store.TrySet(new ClusterState([new ClusterService("default/web:80", "default", "web", [DnsTestKit.ClusterIp], 80, "TCP", null, [], "http")]), out _);
        var cache = new DnsCache(100, time, metrics);
        var forwarding = new DnsForwarding(new UpstreamResolvers([], TimeSpan.FromSeconds(1), metrics, time), cache, metrics, time);
        var handler = new DnsHandler(new ClusterZoneSource(store, "cluster.local"), forwarding, metrics, 5);
        var external = RawQuery(9, "www.example.org", 1);
        byte[] upstreamAnswer = [.. external, 0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 1];
        upstreamAnswer[2] = 0x81;
        upstreamAnswer[3] = 0x80;
        upstreamAnswer[7] = 1;
        cache.Add(DnsForwarding.Key(DnsName.FromText("www.example.org"), 1, 1), UpstreamAnswer.TryCreate(upstreamAnswer, time.GetTimestamp())!);
        var response = new byte[1232];
        var name = new byte[DnsName.MaxLength];

        foreach (var query in (byte[][])[RawQuery(7, "web.default.svc.cluster.local", 1), RawQuery(8, "nothere.default.svc.cluster.local", 28), external])
        {
            Answer(handler, query, response, name, 100);
            var before = GC.GetAllocatedBytesForCurrentThread();
            var answers = Answer(handler, query, response, name, 10_000);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(10_000, answers);
            Assert.Equal(0, allocated);
        }

        Assert.Equal(10_100, metrics.CacheHits);
    }

    private static int Answer(DnsHandler handler, byte[] query, byte[] response, byte[] name, int count)
    {
        var answered = 0;
        for (var i = 0; i < count; i++)
        {
            answered += handler.Answer(query, response, name, udp: true, out _, out var forward) > 12 && !forward ? 1 : 0;
        }

        return answered;
    }

    // No Assert calls inside: xunit's comparers allocate, and this loop is what is measured.
    private static void Queries(Socket client, byte[] query, byte[] reply, int count)
    {
        for (var i = 0; i < count; i++)
        {
            if (Ask(client, query, reply) < 12 + 16 || reply[7] != 1)
            {
                throw new InvalidOperationException("no answer record");
            }
        }
    }

    /// <summary>
    /// One query, sent again after 3 s without an answer, as resolvers do: UDP may drop either
    /// datagram (once in CI a query waited 30 s for nothing). A resend's exception allocates, but
    /// only in its own window, and the quietest window is what counts.
    /// </summary>
    private static int Ask(Socket client, byte[] query, byte[] reply)
    {
        for (var attempt = 1; ; attempt++)
        {
            client.Send(query);
            try
            {
                return client.Receive(reply);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut && attempt < 10)
            {
                // Lost on the way: ask again.
            }
        }
    }
}
