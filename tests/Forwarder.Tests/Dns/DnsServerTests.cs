using System.Text.Json.Nodes;
using Forwarder.Tests.Cluster;
using static Forwarder.Tests.Dns.DnsTestKit;

namespace Forwarder.Tests.Dns;

/// <summary>Names in the cluster domain answered from the discovered cluster, as dig sees them.</summary>
public sealed class DnsServerTests
{
    private const string Web = "web.default.svc.cluster.local";

    [Fact]
    public async Task ServiceName_AnswersClusterIps_A_Aaaa_Srv_Authoritative()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(DualStackService("default", "web", [ClusterIp, "fd00::10"], ("http", 80, 8080, "TCP"), ("metrics", 9090, 9091, "TCP")));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", 8080, ("10.244.0.5", "node-a", "zone-1", true)));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();

        var a = await EventuallyAsync(dns, Web, "A", r => r.Answer.Count > 0, "discovery names the service");
        Assert.Equal("NOERROR", a.Status);
        Assert.Contains("aa", a.Flags);
        Assert.Equal([ClusterIp], a.Data("A"));
        Assert.All(a.Answer, r => Assert.Equal(5, r.Ttl));

        var aaaa = await Dig.QueryAsync(dns, Web, "AAAA");
        Assert.Equal(["fd00::10"], aaaa.Data("AAAA"));

        var srv = await Dig.QueryAsync(dns, $"_http._tcp.{Web}", "SRV");
        Assert.Equal([$"0 100 80 {Web}."], srv.Data("SRV"));
        Assert.Contains(srv.Additional, r => r.Type == "A" && r.Data == ClusterIp);
        Assert.Contains(srv.Additional, r => r.Type == "AAAA" && r.Data == "fd00::10");

        // The service name itself has every port's SRV record.
        var all = await Dig.QueryAsync(dns, Web, "SRV");
        Assert.Equal([$"0 100 80 {Web}.", $"0 100 9090 {Web}."], all.Data("SRV"));

        // The case the client asked in comes back (resolvers randomizing it check that).
        var mixed = await Dig.QueryAsync(dns, "WEB.Default.svc.Cluster.Local", "A");
        Assert.Equal("WEB.Default.svc.Cluster.Local.", Assert.Single(mixed.Answer).Name);
        Assert.Equal(0, upstream.TotalQueries);
    }

    [Fact]
    public async Task SearchPathForms_AsAPodInDefaultSendsThem_AnsweredRight()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, 8080, "TCP")));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();
        await EventuallyAsync(dns, Web, "A", r => r.Answer.Count > 0, "discovery names the service");

        // dig expands a short name with the search list as a pod's resolver would (ndots:5).
        var shortName = await Dig.QueryAsync(dns, "web", "A", "+search", "+ndots=5", "+domain=default.svc.cluster.local");
        Assert.Equal([ClusterIp], shortName.Data("A"));

        // "web.default" with search "default.svc.cluster.local svc.cluster.local cluster.local": the first try does not exist, the second does.
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "web.default.default.svc.cluster.local", "A")).Status);
        Assert.Equal([ClusterIp], (await Dig.QueryAsync(dns, "web.default.svc.cluster.local", "A")).Data("A"));
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "web.default.svc.cluster.local.svc.cluster.local", "A")).Status);
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "web.default.svc.cluster.local.cluster.local", "A")).Status);

        // Names between the apex and a service exist (NODATA, not NXDOMAIN).
        foreach (var between in (string[])["default.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        {
            var result = await Dig.QueryAsync(dns, between, "A");
            Assert.Equal("NOERROR", result.Status);
            Assert.Empty(result.Answer);
        }

        var soa = await Dig.QueryAsync(dns, "cluster.local", "SOA");
        Assert.Equal("cluster.local.", Assert.Single(soa.Answer).Name);
        Assert.Empty(soa.Authority);
        Assert.DoesNotContain("bad packet", soa.Output, StringComparison.Ordinal);
        Assert.Equal(0, upstream.TotalQueries);
    }

    [Fact]
    public async Task UnknownName_NxDomainWithSoa_KnownNameOtherType_NoData()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, 8080, "TCP")));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();
        await EventuallyAsync(dns, Web, "A", r => r.Answer.Count > 0, "discovery names the service");

        var missing = await Dig.QueryAsync(dns, "nothere.default.svc.cluster.local", "A");
        Assert.Equal("NXDOMAIN", missing.Status);
        Assert.Contains("aa", missing.Flags);
        var soa = Assert.Single(missing.Authority);
        Assert.Equal(("cluster.local.", "SOA"), (soa.Name, soa.Type));

        // The SOA minimum is what resolvers cache the NXDOMAIN for (RFC 2308): the configured ttl.
        Assert.EndsWith(" 7200 1800 86400 5", soa.Data, StringComparison.Ordinal);
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, $"_nope._tcp.{Web}", "SRV")).Status);
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "web.elsewhere.svc.cluster.local", "A")).Status);

        var noData = await Dig.QueryAsync(dns, Web, "TXT");
        Assert.Equal("NOERROR", noData.Status);
        Assert.Empty(noData.Answer);
        Assert.Equal("SOA", Assert.Single(noData.Authority).Type);
        Assert.Empty((await Dig.QueryAsync(dns, Web, "AAAA")).Answer);

        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Matches("forwarder_dns_queries_total\\{type=\"a\",result=\"nxdomain\"\\} [1-9]", metrics);
        Assert.Matches("forwarder_dns_queries_total\\{type=\"other\",result=\"nodata\"\\} 1", metrics);
        Assert.Equal(0, upstream.TotalQueries);
    }

    [Fact]
    public async Task HeadlessService_AnswersReadyEndpoints_SrvNamesEachEndpoint()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(HeadlessService("data", "db", ("pg", 5432, 5432, "TCP")));
        api.Put(FakeKubeApiServer.Slice("data", "db", "db-x1", "pg", 5432, ("10.0.1.1", "n1", "z1", true), ("10.0.1.2", "n2", "z1", true), ("10.0.1.3", "n3", "z1", false)));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();

        var a = await EventuallyAsync(dns, "db.data.svc.cluster.local", "A", r => r.Answer.Count > 0, "the headless service's endpoints are discovered");
        Assert.Equal(["10.0.1.1", "10.0.1.2"], a.Data("A"));

        var srv = await Dig.QueryAsync(dns, "_pg._tcp.db.data.svc.cluster.local", "SRV");
        Assert.Equal(["0 100 5432 10-0-1-1.db.data.svc.cluster.local.", "0 100 5432 10-0-1-2.db.data.svc.cluster.local."], srv.Data("SRV"));
        Assert.Equal(["10.0.1.1", "10.0.1.2"], srv.Additional.Select(r => r.Data).Order(StringComparer.Ordinal));
        Assert.Equal(["10.0.1.2"], (await Dig.QueryAsync(dns, "10-0-1-2.db.data.svc.cluster.local", "A")).Data("A"));
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "10-0-1-3.db.data.svc.cluster.local", "A")).Status);

        // Readiness changes reach DNS with the next discovered state.
        api.Put(FakeKubeApiServer.Slice("data", "db", "db-x1", "pg", 5432, ("10.0.1.1", "n1", "z1", false), ("10.0.1.3", "n3", "z1", true)));
        await EventuallyAsync(dns, "db.data.svc.cluster.local", "A", r => r.Data("A").SequenceEqual(["10.0.1.3"]), "the new ready set is answered");
    }

    [Fact]
    public async Task UdpAndTcpPortsOfOneNumber_EachGetTheirSrvRecord()
    {
        // 53/UDP and 53/TCP are two forwarder services (NAME:53/udp and NAME:53); DNS still sees one Service with two ports.
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "dns", ClusterIp, ("dns", 53, 5353, "UDP"), ("dns-tcp", 53, 5353, "TCP")));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();

        var udp = await EventuallyAsync(dns, "_dns._udp.dns.default.svc.cluster.local", "SRV", r => r.Answer.Count > 0, "the UDP port's SRV record is served");
        Assert.Equal(["0 100 53 dns.default.svc.cluster.local."], udp.Data("SRV"));
        Assert.Equal(["0 100 53 dns.default.svc.cluster.local."], (await Dig.QueryAsync(dns, "_dns-tcp._tcp.dns.default.svc.cluster.local", "SRV")).Data("SRV"));
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "_dns._tcp.dns.default.svc.cluster.local", "SRV")).Status);
    }

    [Fact]
    public async Task DiscoveryUpdates_SwapTheAnswers()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, 8080, "TCP")));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();
        await EventuallyAsync(dns, Web, "A", r => r.Answer.Count > 0, "discovery names the service");
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "api.shop.svc.cluster.local", "A")).Status);

        var api2 = FakeKubeApiServer.Service("shop", "api", "10.96.7.7", ("grpc", 8080, 8080, "TCP"));
        api.Put(api2);
        await EventuallyAsync(dns, "api.shop.svc.cluster.local", "A", r => r.Data("A").SequenceEqual(["10.96.7.7"]), "an added service is answered");

        var moved = FakeKubeApiServer.Service("default", "web", "10.96.0.99", ("http", 80, 8080, "TCP"));
        api.Put(moved);
        await EventuallyAsync(dns, Web, "A", r => r.Data("A").SequenceEqual(["10.96.0.99"]), "a changed ClusterIP is answered");

        api.Delete(api2);
        await EventuallyAsync(dns, "api.shop.svc.cluster.local", "A", r => r.Status == "NXDOMAIN", "a deleted service is gone");
        Assert.Equal("NXDOMAIN", (await Dig.QueryAsync(dns, "shop.svc.cluster.local", "A")).Status);
    }

    [Fact]
    public async Task OverTcp_SameAnswers_LargeAnswerTruncatedOverUdp()
    {
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, 8080, "TCP")));
        api.Put(HeadlessService("default", "many", ("http", 80, 8080, "TCP")));
        var endpoints = Enumerable.Range(1, 60).Select(i => ($"10.1.0.{i}", "n", "z", true)).ToArray();
        api.Put(FakeKubeApiServer.Slice("default", "many", "many-1", "http", 8080, endpoints));
        await api.StartAsync();
        await using var upstream = new TestUpstreamDns();
        await using var forwarder = await StartAsync(api.Url, upstream);
        var dns = forwarder.Dns();
        await EventuallyAsync(dns, "many.default.svc.cluster.local", "A", r => r.Answer.Count > 0, "discovery names the service", "+tcp");

        var tcp = await Dig.QueryAsync(dns, Web, "A", "+tcp");
        Assert.Equal([ClusterIp], tcp.Data("A"));
        Assert.Contains("aa", tcp.Flags);

        // 60 A records do not fit 512 bytes: over UDP without EDNS the answer says TC...
        var truncated = await Dig.QueryAsync(dns, "many.default.svc.cluster.local", "A", "+noedns", "+ignore");
        Assert.Contains("tc", truncated.Flags);
        Assert.True(truncated.Answer.Count < 60, truncated.Output);

        // ...and dig, as any resolver, asks again over TCP and gets them all.
        var retried = await Dig.QueryAsync(dns, "many.default.svc.cluster.local", "A", "+noedns");
        Assert.Equal(60, retried.Data("A").Length);
        Assert.DoesNotContain("tc", retried.Flags);

        // With EDNS (dig offers 1232 bytes) they fit one datagram.
        var edns = await Dig.QueryAsync(dns, "many.default.svc.cluster.local", "A", "+ignore");
        Assert.Equal(60, edns.Data("A").Length);
        Assert.DoesNotContain("tc", edns.Flags);
    }
}
