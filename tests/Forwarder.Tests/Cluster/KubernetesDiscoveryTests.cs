using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Forwarder.Cluster;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.Cluster.ClusterTestKit;

namespace Forwarder.Tests.Cluster;

public sealed class KubernetesDiscoveryTests
{
    private const string ClusterIp = "10.96.0.10";

    [Fact]
    public async Task ListedEndpoints_TakeTraffic_ModifiedSliceFollowed_InFlightKept_DeleteEmpties()
    {
        var (a, b) = TwoBackends();
        await using var backendA = a;
        await using var backendB = b;
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, a.EndPoint.Port, "TCP")));
        var slice = FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", true));
        api.Put(slice);
        await api.StartAsync();
        await using var forwarder = await RunningForwarder.StartAsync(Config(api.Url));
        var listener = forwarder.EndPoint("web");

        await ReachesAsync(listener, 'A', "the listed endpoint takes traffic");
        var (held, id) = await ConnectAsync(listener);
        using var inFlight = held;
        Assert.Equal('A', id);
        await AssertEchoAsync(inFlight, "before the change");

        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", false), ("127.0.0.3", "node-b", "zone-2", true)));
        await ReachesAsync(listener, 'B', "the MODIFIED slice's ready endpoint takes new connections");
        for (var i = 0; i < 5; i++)
        {
            var (socket, again) = await ConnectAsync(listener);
            socket.Dispose();
            Assert.Equal('B', again);
        }

        await AssertEchoAsync(inFlight, "the connection open before the change goes on");

        using (var http = new HttpClient { BaseAddress = forwarder.AdminAddress })
        {
            using var config = JsonDocument.Parse(await http.GetStringAsync("/config"));
            var service = config.RootElement.GetProperty("config").GetProperty("services").GetProperty("default/web:80");
            Assert.Equal("kubernetes", service.GetProperty("origin").GetString());
            var metrics = await http.GetStringAsync("/metrics");
            Assert.Contains("forwarder_discovery_connected 1", metrics, StringComparison.Ordinal);
            Assert.Contains("forwarder_discovery_services 1", metrics, StringComparison.Ordinal);
            Assert.Contains("forwarder_discovery_endpoints 2", metrics, StringComparison.Ordinal);
        }

        api.Delete(slice);
        await ReachesAsync(listener, null, "a deleted slice takes its endpoints away");
        await AssertEchoAsync(inFlight, "still open after the delete");
    }

    [Fact]
    public async Task DroppedWatch_WatchesAgainFromLastVersion_Gone_Relists()
    {
        var (a, b) = TwoBackends();
        await using var backendA = a;
        await using var backendB = b;
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, a.EndPoint.Port, "TCP")));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", true)));
        await api.StartAsync();
        await using var forwarder = await RunningForwarder.StartAsync(Config(api.Url));
        var listener = forwarder.EndPoint("web");
        await ReachesAsync(listener, 'A', "the listed endpoint takes traffic");
        await Eventually.TrueAsync(() => api.OpenWatches == 2, "both kinds are watched");
        var lists = Lists(api);

        // A bookmark moves the version on; the server then ends the watches (their timeoutSeconds ran out).
        var bookmark = api.Bookmark();
        api.EndWatches();
        await Eventually.TrueAsync(
            () => api.Requests.Count(r => r.Contains("watch=true", StringComparison.Ordinal) && r.EndsWith($"resourceVersion={bookmark}", StringComparison.Ordinal)) == 2,
            "both watches are opened again from the bookmark's version");
        Assert.Equal(lists, Lists(api));
        Assert.True(forwarder.Metrics.Discovery.WatchRestarts >= 2);

        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.3", "node-b", "zone-2", true)));
        var version = api.CurrentVersion;
        await ReachesAsync(listener, 'B', "a change on the renewed watch is applied");

        // The watch connections are cut mid-stream: watched again from the last event's version, no relist.
        api.DropWatches();
        await Eventually.TrueAsync(
            () => api.Requests.Any(r => r.Contains("endpointslices?watch=true", StringComparison.Ordinal) && r.EndsWith($"resourceVersion={version}", StringComparison.Ordinal)),
            "the slice watch is opened again from the last version it saw",
            TimeSpan.FromSeconds(60));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", true)));
        await ReachesAsync(listener, 'A', "a change after the dropped watch is applied");
        Assert.Equal(lists, Lists(api));
        Assert.True(forwarder.Metrics.Discovery.Errors >= 1, "the dropped watches count as errors");

        // History is compacted while a change goes unannounced: only a relist can find it.
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.3", "node-b", "zone-2", true)), silently: true);
        api.Expire();
        await ReachesAsync(listener, 'B', "the relist after 410 Gone finds the change");
        Assert.True(Lists(api) >= lists + 2);
        Assert.True(forwarder.Metrics.Discovery.Relists >= 2);
    }

    [Fact]
    public async Task ApiDownAtStart_CacheServed_ApiBack_DiffApplied()
    {
        var (a, b) = TwoBackends();
        await using var backendA = a;
        await using var backendB = b;
        var folder = Directory.CreateTempSubdirectory("forwarder-k8s-").FullName;
        try
        {
            var cache = Path.Combine(folder, "cluster.json");
            ClusterCache.Write(cache, ClusterCache.Serialize(new ClusterState([
                new ClusterService("default/web:80", "default", "web", [ClusterIp], 80, "TCP", null, [new ClusterEndpoint($"127.0.0.2:{a.EndPoint.Port}", "node-a", "zone-1", true, true, false)]),
            ])));
            var port = FreePort();
            await using var forwarder = await RunningForwarder.StartAsync(Config(new Uri($"http://127.0.0.1:{port}"), cache));
            var listener = forwarder.EndPoint("web");

            await ReachesAsync(listener, 'A', "the cached endpoint takes traffic while the API server is down");
            Assert.Equal(1, forwarder.Metrics.Discovery.FromCache);
            await Eventually.TrueAsync(() => forwarder.Metrics.Discovery.Errors > 0, "discovery keeps trying");
            await ReachesAsync(listener, 'A', "failed calls do not take the cached endpoints away");

            await using var api = new FakeKubeApiServer(port);
            api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, a.EndPoint.Port, "TCP")));
            api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.3", "node-b", "zone-2", true)));
            await api.StartAsync();

            await ReachesAsync(listener, 'B', "the API server's state replaces the cached one");
            Assert.Equal(0, forwarder.Metrics.Discovery.FromCache);
            var persisted = ClusterCache.Read(cache)!;
            Assert.Equal($"127.0.0.3:{a.EndPoint.Port}", Assert.Single(Assert.Single(persisted.Services).Endpoints).Address);
            Assert.Empty(Directory.GetFiles(folder, "*.tmp"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task ApiDiesMidRun_EndpointsKept()
    {
        var (a, b) = TwoBackends();
        await using var backendA = a;
        await using var backendB = b;
        var api = new FakeKubeApiServer();
        await using (api)
        {
            api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, a.EndPoint.Port, "TCP")));
            api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", true), ("127.0.0.3", "node-b", "zone-1", true)));
            await api.StartAsync();
            await using var forwarder = await RunningForwarder.StartAsync(Config(api.Url));
            var listener = forwarder.EndPoint("web");
            await ReachesAsync(listener, 'A', "the first endpoint takes traffic");
            await ReachesAsync(listener, 'B', "the second endpoint takes traffic");

            await api.StopAsync();
            await Eventually.TrueAsync(() => forwarder.Metrics.Discovery.Connected == 0 && forwarder.Metrics.Discovery.Errors >= 2, "the lost control plane is noticed");
            await ReachesAsync(listener, 'A', "the first endpoint still takes traffic");
            await ReachesAsync(listener, 'B', "the second endpoint still takes traffic");
            Assert.Equal(2, forwarder.Metrics.Discovery.Endpoints);
        }
    }

    [Fact]
    public async Task Namespaces_OnlyThoseAreListedAndWatched()
    {
        var (a, b) = TwoBackends();
        await using var backendA = a;
        await using var backendB = b;
        await using var api = new FakeKubeApiServer();
        api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, a.EndPoint.Port, "TCP")));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", true)));
        api.Put(FakeKubeApiServer.Service("other", "web", "10.96.0.20", ("http", 80, a.EndPoint.Port, "TCP")));
        await api.StartAsync();
        await using var forwarder = await RunningForwarder.StartAsync(Config(api.Url, namespaces: "default"));
        var listener = forwarder.EndPoint("web");
        await ReachesAsync(listener, 'A', "the watched namespace's endpoint takes traffic");
        await Eventually.TrueAsync(() => api.OpenWatches == 2, "both kinds are watched");

        api.Put(FakeKubeApiServer.Service("other", "api", "10.96.0.21", ("http", 81, a.EndPoint.Port, "TCP")));
        api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.3", "node-b", "zone-2", true)));
        await ReachesAsync(listener, 'B', "the watched namespace's change is applied");

        Assert.All(api.Requests, r => Assert.Contains("/namespaces/default/", r, StringComparison.Ordinal));
        Assert.Equal(["default/web:80"], forwarder.Runtime.Config.Services.Keys);
    }

    [Fact]
    public async Task Https_ServerCheckedAgainstCaFile_TokenSent()
    {
        var (a, b) = TwoBackends();
        await using var backendA = a;
        await using var backendB = b;
        var folder = Directory.CreateTempSubdirectory("forwarder-k8s-tls-").FullName;
        try
        {
            using var authority = new TestCertificates();
            using var foreign = new TestCertificates();
            authority.Write(folder, "apiserver", "localhost").Dispose();
            var caFile = authority.WriteAuthority(folder);
            var foreignCa = Path.Combine(folder, "foreign-ca.pem");
            await File.WriteAllTextAsync(foreignCa, foreign.Authority.ExportCertificatePem());
            var tokenFile = Path.Combine(folder, "token");
            await File.WriteAllTextAsync(tokenFile, "sa-token-1\n");
            using var certificate = X509Certificate2.CreateFromPemFile(Path.Combine(folder, "apiserver.pem"), Path.Combine(folder, "apiserver.key"));
            await using var api = new FakeKubeApiServer(certificate: certificate);
            api.Put(FakeKubeApiServer.Service("default", "web", ClusterIp, ("http", 80, a.EndPoint.Port, "TCP")));
            api.Put(FakeKubeApiServer.Slice("default", "web", "web-abc12", "http", a.EndPoint.Port, ("127.0.0.2", "node-a", "zone-1", true)));
            await api.StartAsync();

            string Yaml(string ca) => Config(api.Url)
                .Replace("tokenFile: /nonexistent/token", $"tokenFile: {tokenFile}\n    caFile: {ca}", StringComparison.Ordinal);

            await using (var trusting = await RunningForwarder.StartAsync(Yaml(caFile)))
            {
                await ReachesAsync(trusting.EndPoint("web"), 'A', "endpoints come from the API server the CA file vouches for");
                Assert.All(api.Authorizations, h => Assert.Equal("Bearer sa-token-1", h));
            }

            var requests = api.Requests.Count;
            await using var distrusting = await RunningForwarder.StartAsync(Yaml(foreignCa));
            await Eventually.TrueAsync(() => distrusting.Metrics.Discovery.Errors >= 2, "a server the CA file does not vouch for is refused");
            Assert.Equal(requests, api.Requests.Count);
            await ReachesAsync(distrusting.EndPoint("web"), null, "nothing is discovered from it");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static int Lists(FakeKubeApiServer api) => api.Requests.Count(r => !r.Contains("watch=true", StringComparison.Ordinal));
}
