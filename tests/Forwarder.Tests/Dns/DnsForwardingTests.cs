using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.Dns.DnsTestKit;

namespace Forwarder.Tests.Dns;

/// <summary>Names outside the cluster domain: forwarded to in-test upstream resolvers, cached, coalesced, failed over.</summary>
public sealed class DnsForwardingTests
{
    [Fact]
    public async Task OtherName_Forwarded_ThenCachedWithTtlCountingDown_ThenAskedAgainOnExpiry()
    {
        await using var upstream = new TestUpstreamDns { Ttl = 2 };
        await using var forwarder = await StartAsync(null, upstream);
        var dns = forwarder.Dns();

        var first = await Dig.QueryAsync(dns, "www.example.org", "A");
        Assert.Equal("NOERROR", first.Status);
        var address = Assert.Single(first.Data("A"));
        Assert.StartsWith("192.0.1.", address, StringComparison.Ordinal);
        Assert.Contains("ra", first.Flags);
        Assert.Equal(1, upstream.Queries("www.example.org"));

        var second = await Dig.QueryAsync(dns, "WWW.example.org", "A");
        Assert.Equal([address], second.Data("A"));
        Assert.Equal("WWW.example.org.", second.Answer[0].Name);
        Assert.InRange(second.Answer[0].Ttl, 0, 2);
        Assert.Equal(1, upstream.Queries("www.example.org"));
        Assert.Equal(1, forwarder.Metrics.Dns.CacheHits);

        // Once the 2 s TTL has run out the cache lets go and the upstream is asked again.
        await Eventually.TrueAsync(
            async () =>
            {
                Assert.Equal([address], (await Dig.QueryAsync(dns, "www.example.org", "A")).Data("A"));
                return upstream.Queries("www.example.org") == 2;
            },
            "the expired answer is fetched again");

        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Matches("forwarder_dns_queries_total\\{type=\"a\",result=\"forwarded\"\\} 2", metrics);
        Assert.Matches("forwarder_dns_queries_total\\{type=\"a\",result=\"cached\"\\} [1-9]", metrics);
        Assert.Contains($"forwarder_dns_upstream_latency_seconds_count{{upstream=\"{upstream.EndPoint}\"}} 2", metrics, StringComparison.Ordinal);
        Assert.Matches("forwarder_dns_cache_hits_total [1-9]", metrics);
    }

    [Fact]
    public async Task NxDomainFromUpstream_CachedForTheSoaMinimum()
    {
        await using var upstream = new TestUpstreamDns { Ttl = 300, NegativeTtl = 3600 };
        await using var forwarder = await StartAsync(null, upstream);
        var dns = forwarder.Dns();

        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "nx-long.example", "A")).Status);
        var again = await Dig.QueryAsync(dns, "nx-long.example", "A");
        Assert.Equal("NXDOMAIN", again.Status);
        Assert.Equal("SOA", Assert.Single(again.Authority).Type);
        Assert.Equal(1, upstream.Queries("nx-long.example"));

        // A one-second SOA minimum: the negative answer expires after it (RFC 2308: min(SOA TTL, MINIMUM)).
        upstream.NegativeTtl = 1;
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "nx-short.example", "A")).Status);
        await Eventually.TrueAsync(
            async () => (await Dig.QueryAsync(dns, "nx-short.example", "A")).Status == "NXDOMAIN" && upstream.Queries("nx-short.example") >= 2,
            "the negative answer expires with the SOA minimum");
        Assert.Equal(1, upstream.Queries("nx-long.example"));
    }

    [Fact]
    public async Task IdenticalQueriesInFlight_OneUpstreamQuery_AllAnswered()
    {
        await using var upstream = new TestUpstreamDns { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var forwarder = await StartPatientAsync(upstream);
        var dns = forwarder.Dns();
        const int Clients = 20;
        var clients = Enumerable.Range(0, Clients).Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)).ToArray();
        try
        {
            for (var i = 0; i < Clients; i++)
            {
                clients[i].Connect(dns);
                await clients[i].SendAsync(RawQuery((ushort)(1000 + i), "same.example", 1));
            }

            await Eventually.TrueAsync(() => forwarder.Metrics.Dns.Coalesced == Clients - 1, "the other 19 queries join the first");
            await Eventually.TrueAsync(() => upstream.Queries("same.example") == 1, "the first query reaches the upstream");
            Assert.Equal(Clients - 1, forwarder.Metrics.Dns.Coalesced);
            upstream.Gate.SetResult();

            for (var i = 0; i < Clients; i++)
            {
                var buffer = new byte[1500];
                var length = await clients[i].ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(30));
                Assert.Equal(1000 + i, BinaryPrimitives.ReadUInt16BigEndian(buffer));
                Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(6)));
                Assert.True(length > 12 + 16);
            }

            Assert.Equal(1, upstream.Queries("same.example"));
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
    public async Task DeadUpstream_NextOneAnswers_AndIsAskedFirstAfterwards_AllDeadIsServFail()
    {
        await using var dead = new TestUpstreamDns(lastOctet: 1) { Silent = true };
        await using var alive = new TestUpstreamDns(lastOctet: 2);
        await using var forwarder = await StartAsync(null, dead, alive);
        var dns = forwarder.Dns();

        var answer = await Dig.QueryAsync(dns, "one.example", "A");
        Assert.True(answer.Data("A") is [var one] && one.StartsWith("192.0.2.", StringComparison.Ordinal), answer.Output);
        Assert.Equal(1, dead.Queries("one.example"));
        Assert.Equal(1, forwarder.Metrics.Dns.Upstreams.Single(u => u.Name == dead.EndPoint.ToString()).Failures);

        Assert.StartsWith("192.0.2.", Assert.Single((await Dig.QueryAsync(dns, "two.example", "A")).Data("A")), StringComparison.Ordinal);
        Assert.Equal(0, dead.Queries("two.example"));

        alive.Silent = true;
        var failed = await Dig.QueryAsync(dns, "three.example", "A");
        Assert.Equal("SERVFAIL", failed.Status);
        Assert.Equal(1, dead.Queries("three.example"));
        Assert.Equal(1, alive.Queries("three.example"));

        // A failure is not cached: the next query goes upstream again and gets the answer.
        alive.Silent = false;
        Assert.StartsWith("192.0.2.", Assert.Single((await Dig.QueryAsync(dns, "three.example", "A")).Data("A")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TruncatedUpstreamAnswer_AskedAgainOverTcp_LargeAnswerReachesClientsOverTcp()
    {
        await using var upstream = new TestUpstreamDns { TruncateUdp = true };
        await using var forwarder = await StartAsync(null, upstream);
        var dns = forwarder.Dns();

        var answer = await Dig.QueryAsync(dns, "big.example", "A", "+noedns", "+ignore");
        Assert.Equal(1, upstream.TcpQueries);
        Assert.Contains("tc", answer.Flags);
        Assert.Empty(answer.Answer);

        // dig retries over TCP as any resolver does; the answer comes from the cache.
        var full = await Dig.QueryAsync(dns, "big.example", "A", "+noedns");
        Assert.Equal(60, full.Data("A").Length);
        Assert.Equal(1, upstream.TcpQueries);
        Assert.Equal(1, forwarder.Metrics.Dns.Upstreams.Single().TcpRetries);

        var overTcp = await Dig.QueryAsync(dns, "other.example", "A", "+tcp");
        Assert.Single(overTcp.Data("A"));
        Assert.Equal(2, upstream.TcpQueries);
    }

    [Fact]
    public async Task Tcp_PipelinedQueries_ClusterAnswersDoNotWaitForASlowUpstream()
    {
        await using var upstream = new TestUpstreamDns { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var forwarder = await StartPatientAsync(upstream);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(forwarder.Dns());

        // Three queries in one write: the first waits for the upstream, the others are answered meanwhile.
        byte[][] queries = [RawQuery(1, "slow.example", 1), RawQuery(2, "x.default.svc.cluster.local", 1), RawQuery(3, "cluster.local", 6)];
        await client.SendAsync(queries.SelectMany(q => (byte[])[(byte)(q.Length >> 8), (byte)q.Length, .. q]).ToArray());

        var firstTwo = new[] { await ReadFramedAsync(client), await ReadFramedAsync(client) };
        Assert.Equal([2, 3], firstTwo.Select(r => (int)BinaryPrimitives.ReadUInt16BigEndian(r)).Order());
        Assert.Equal(3, firstTwo.Single(r => r[1] == 2)[3] & 0xF);
        upstream.Gate.SetResult();
        var last = await ReadFramedAsync(client);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(last));
        Assert.Equal(0, last[3] & 0xF);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(last.AsSpan(6)));
    }

    /// <summary>A query built by hand: RD set, one question, no EDNS.</summary>
    internal static byte[] RawQuery(ushort id, string name, ushort type)
    {
        var labels = name.Split('.');
        var query = new byte[12 + labels.Sum(l => l.Length + 1) + 1 + 4];
        BinaryPrimitives.WriteUInt16BigEndian(query, id);
        query[2] = 0x01;
        query[5] = 1;
        var offset = 12;
        foreach (var label in labels)
        {
            query[offset++] = (byte)label.Length;
            offset += System.Text.Encoding.ASCII.GetBytes(label, query.AsSpan(offset));
        }

        query[offset++] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(query.AsSpan(offset), type);
        query[offset + 3] = 1;
        return query;
    }

    internal static async Task<byte[]> ReadFramedAsync(Socket socket)
    {
        var prefix = new byte[2];
        await ReadExactlyAsync(socket, prefix);
        var message = new byte[BinaryPrimitives.ReadUInt16BigEndian(prefix)];
        await ReadExactlyAsync(socket, message);
        return message;
    }

    private static async Task ReadExactlyAsync(Socket socket, byte[] buffer)
    {
        for (var read = 0; read < buffer.Length;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read)).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.NotEqual(0, n);
            read += n;
        }
    }
}
