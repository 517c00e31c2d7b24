using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Forwarder.Cluster;
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
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 30_000 };
        client.Connect(forwarder.Service<Forwarder.Dns.DnsServer>().EndPoint!);
        var query = RawQuery(7, name, 1);
        var reply = new byte[512];

        var (perQuery, perSecond) = await Task.Factory.StartNew(
            () =>
            {
                // Warm up (zone built, answer cached, JIT settled), then the quietest of several windows.
                Queries(client, query, reply, 10_000);
                const int measured = 10_000;
                var quietest = double.MaxValue;
                var fastest = 0.0;
                for (var window = 0; window < 10; window++)
                {
                    var before = GC.GetTotalAllocatedBytes(precise: true);
                    var started = Stopwatch.GetTimestamp();
                    Queries(client, query, reply, measured);
                    fastest = Math.Max(fastest, measured / Stopwatch.GetElapsedTime(started).TotalSeconds);
                    quietest = Math.Min(quietest, (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)measured);
                }

                return (quietest, fastest);
            },
            TaskCreationOptions.LongRunning);

        output.WriteLine($"{name}: {perQuery:F2} bytes allocated per query, {perSecond:F0} queries/s from one synchronous client");
        Assert.Equal(1, upstream.Queries(name) + (name.EndsWith(".cluster.local", StringComparison.Ordinal) ? 1 : 0));
        Assert.True(perQuery < 8, $"{perQuery:F2} bytes allocated per query");
    }

    // No Assert calls inside: xunit's comparers allocate, and this loop is what is measured.
    private static void Queries(Socket client, byte[] query, byte[] reply, int count)
    {
        for (var i = 0; i < count; i++)
        {
            client.Send(query);
            if (client.Receive(reply) < 12 + 16 || reply[7] != 1)
            {
                throw new InvalidOperationException("no answer record");
            }
        }
    }
}
