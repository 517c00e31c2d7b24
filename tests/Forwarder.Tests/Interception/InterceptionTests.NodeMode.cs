using System.Net;
using System.Text.Json.Nodes;
using Forwarder.Tests.Cluster;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Interception;

/// <content>
/// The drop-in node proxy end to end: an app in a pod resolves a Service's name through the
/// node's DNS (a real resolver, with the pod's search path), connects to the ClusterIP the answer
/// gives, and is intercepted and balanced to backends in namespaces of their own, while the
/// endpoint set comes from the API server and changes under load; then again with the API server
/// down and only the cache file a previous run left.
/// </content>
public sealed partial class InterceptionTests
{
    /// <summary>The node's address on the pod's link, where the pod's resolv.conf points.</summary>
    private const string NodeDns = "198.19.200.1";

    private static readonly IPEndPoint WebVip = new(InterceptLab.Vip(60), 80);

    [Fact]
    public async Task PodResolvesTheServiceName_ItsClusterIpIsIntercepted_EndpointsRollUnderLoad_NoRequestLost()
    {
        await using var be1 = await BackendNamespace.StartAsync(lab.Node, 1, "be1");
        await using var be2 = await BackendNamespace.StartAsync(lab.Node, 2, "be2");
        await using var api = new FakeKubeApiServer();
        api.Put(WebService());
        api.Put(WebSlice("web-a", (be1, true)));
        await api.StartAsync();
        await using var relay = ApiRelay(api.Port);
        using var resolvConf = new PodResolvConf(lab.Pod);
        await StartAsync(NodeModeConfig(relay.EndPoint, cacheFile: null));
        await Eventually.TrueAsync(() => lab.Rules().Contains($"-d {WebVip.Address}/32", StringComparison.Ordinal), "discovery adds the ClusterIP's rules");

        // glibc's resolver in the pod expands the short name through the search path.
        Assert.StartsWith($"{WebVip.Address} ", InterceptLab.Exec(lab.Pod, "getent", "ahostsv4", "web"), StringComparison.Ordinal);
        Assert.Equal("be1", PodGet("http://web/"));
        Assert.Equal("be1", PodGet("http://web.default.svc.cluster.local/"));
        Assert.Contains($" {WebVip.Port} web.default.svc.cluster.local.", InterceptLab.Exec(lab.Pod, "dig", "+short", "SRV", "_http._tcp.web.default.svc.cluster.local"), StringComparison.Ordinal);
        Assert.Contains("status: NXDOMAIN", InterceptLab.Exec(lab.Pod, "dig", "absent.default.svc.cluster.local"), StringComparison.Ordinal);

        // A rolling update under steady traffic: be2 becomes ready, then be1 stops being ready and its slice goes.
        await using var load = PodLoad.Start(lab.Pod, WebVip, clients: 4);
        await Eventually.TrueAsync(() => load.Answers().Count >= 100, "traffic flows before the update");
        api.Put(WebSlice("web-b", (be2, true)));
        await Eventually.TrueAsync(() => load.Answers().Contains("be2"), "the new endpoint takes requests");
        api.Put(WebSlice("web-a", (be1, false)));
        await Eventually.TrueAsync(() => load.Answers() is { Count: >= 200 } answers && answers.TakeLast(100).All(a => a == "be2"), "the endpoint no longer ready stops taking requests");
        api.Delete(WebSlice("web-a", (be1, false)));
        var answers = await load.StopAsync();
        output.WriteLine($"{answers.Count} requests during the update: {answers.Count(a => a == "be1")} to be1, {answers.Count(a => a == "be2")} to be2");

        Assert.Empty(load.Failures);
        Assert.Equal(answers.Count, answers.Count(a => a is "be1" or "be2"));
        Assert.Equal("be2", PodGet("http://web/"));
        Assert.True(await MetricAsync("forwarder_intercept_connections_total", "result=\"served\"") >= 10);
        Assert.True(await MetricAsync("forwarder_dns_queries_total", "type=\"a\",result=\"answer\"") >= 3);
        Assert.Equal(1, await MetricAsync("forwarder_dns_queries_total", "type=\"srv\",result=\"answer\""));
    }

    [Fact]
    public async Task ApiDownAtStart_TheCacheFileServesDnsAndInterception_ApiBack_ItsStateApplied()
    {
        await using var be1 = await BackendNamespace.StartAsync(lab.Node, 1, "be1");
        await using var be2 = await BackendNamespace.StartAsync(lab.Node, 2, "be2");
        using var resolvConf = new PodResolvConf(lab.Pod);
        var cache = Path.Combine(_folder, "cluster.json");
        IPEndPoint apiAddress;

        // A first run learns the cluster, and leaves the cache file behind when it stops.
        await using (var api = new FakeKubeApiServer())
        {
            api.Put(WebService());
            api.Put(WebSlice("web-a", (be1, true)));
            await api.StartAsync();
            await using var relay = ApiRelay(api.Port);
            apiAddress = relay.EndPoint;
            var first = await StartAsync(NodeModeConfig(apiAddress, cache));
            Assert.Equal("be1", await EventuallyPodGetAsync("http://web/", "be1"));
            Assert.Contains(be1.Address.ToString(), await File.ReadAllTextAsync(cache), StringComparison.Ordinal);
            first.Signal(15);
            await first.WaitForExitAsync(TimeSpan.FromSeconds(60));
        }

        // The control plane is gone (nothing listens where it was): the cache serves names and VIPs.
        await StartAsync(NodeModeConfig(apiAddress, cache));
        Assert.Equal("be1", await EventuallyPodGetAsync("http://web/", "be1"));
        Assert.Equal(1, await MetricAsync("forwarder_discovery_from_cache", string.Empty));
        await Eventually.TrueAsync(async () => await MetricAsync("forwarder_discovery_errors_total", string.Empty) >= 2, "discovery keeps trying");
        Assert.Equal("be1", PodGet("http://web/"));

        // It comes back where it was, with be1 replaced by be2: the difference is applied.
        await using var back = new FakeKubeApiServer();
        back.Put(WebService());
        back.Put(WebSlice("web-b", (be2, true)));
        await back.StartAsync();
        await using var backRelay = ApiRelay(back.Port, apiAddress.Port);
        Assert.Equal("be2", await EventuallyPodGetAsync("http://web/", "be2"));
        Assert.Equal(0, await MetricAsync("forwarder_discovery_from_cache", string.Empty));
        Assert.Contains(be2.Address.ToString(), await File.ReadAllTextAsync(cache), StringComparison.Ordinal);
    }

    private static JsonObject WebService()
    {
        var service = FakeKubeApiServer.Service("default", "web", WebVip.Address.ToString(), ("http", WebVip.Port, BackendNamespace.Port, "TCP"));
        service["spec"]!["ports"]![0]!["appProtocol"] = "http";
        return service;
    }

    private static JsonObject WebSlice(string name, params (BackendNamespace Backend, bool Ready)[] endpoints)
        => FakeKubeApiServer.Slice("default", "web", name, "http", BackendNamespace.Port, [.. endpoints.Select(e => (e.Backend.Address.ToString(), $"node-{e.Backend.Name}", "zone-1", e.Ready))]);

    /// <summary>The fake API server serves on this process's loopback; the node reaches it through a relay on the lab link.</summary>
    private TcpTestServer ApiRelay(int apiPort, int port = 0)
        => new(client => PipeAsync(client, new IPEndPoint(IPAddress.Loopback, apiPort)), port: port, address: lab.HostAddress);

    private static string NodeModeConfig(IPEndPoint apiServer, string? cacheFile) => $$"""
        cluster:
          kubernetes:
            apiServer: http://{{apiServer}}
            tokenFile: /nonexistent/token
        {{(cacheFile is null ? string.Empty : $"    cacheFile: {cacheFile}")}}
        dns:
          listen: {{NodeDns}}:53
        """;

    /// <summary>A GET by curl in the pod: name resolution, the connection and the request are all the pod's own.</summary>
    private string PodGet(string url) => InterceptLab.Exec(lab.Pod, "curl", "-sS", "--max-time", "10", url);

    private async Task<string> EventuallyPodGetAsync(string url, string expected)
    {
        string? last = null;
        await Eventually.TrueAsync(
            () =>
            {
                try
                {
                    last = PodGet(url);
                }
                catch (InvalidOperationException ex)
                {
                    last = ex.Message;
                }

                return last == expected;
            },
            $"GET {url} in the pod answers {expected}");
        return last!;
    }

    /// <summary>The pod's /etc/resolv.conf as kubelet writes it for ClusterFirst pods (ip netns exec mounts it there).</summary>
    private sealed class PodResolvConf : IDisposable
    {
        private readonly string _folder;

        public PodResolvConf(string pod)
        {
            _folder = Path.Combine("/etc/netns", pod);
            Directory.CreateDirectory(_folder);
            File.WriteAllText(Path.Combine(_folder, "resolv.conf"), $"nameserver {NodeDns}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n");
        }

        public void Dispose() => Directory.Delete(_folder, recursive: true);
    }
}
