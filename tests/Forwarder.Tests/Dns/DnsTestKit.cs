using System.Net;
using System.Text.Json.Nodes;
using Forwarder.Dns;
using Forwarder.Tests.Cluster;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Dns;

/// <summary>A forwarder whose dns section answers from a fake API server's cluster and forwards to test upstreams.</summary>
internal static class DnsTestKit
{
    public const string ClusterIp = "10.96.0.10";

    /// <param name="upstreamTimeout">Generous: a loaded machine must not turn a live upstream into a dead one.</param>
    public static string Config(Uri? apiServer, IEnumerable<IPEndPoint> upstreams, string upstreamTimeout = "3s", bool admin = true) => $$"""
        {{(admin ? "admin: { listen: 127.0.0.1:0 }" : string.Empty)}}
        {{(apiServer is null ? string.Empty : $"cluster:\n  kubernetes:\n    apiServer: {apiServer}\n    tokenFile: /nonexistent/token")}}
        dns:
          listen: 127.0.0.1:0
          upstreams: [{{string.Join(", ", upstreams)}}]
          upstreamTimeout: {{upstreamTimeout}}
        listeners: []
        """;

    public static async Task<RunningForwarder> StartAsync(Uri? apiServer, params TestUpstreamDns[] upstreams)
        => await RunningForwarder.StartAsync(Config(apiServer, upstreams.Select(u => u.EndPoint)));

    /// <summary>For upstreams held back by a gate: the forwarder must wait for them however long the test takes.</summary>
    public static async Task<RunningForwarder> StartPatientAsync(TestUpstreamDns upstream)
        => await RunningForwarder.StartAsync(Config(null, [upstream.EndPoint], upstreamTimeout: "60s"));

    public static IPEndPoint Dns(this RunningForwarder forwarder) => forwarder.Service<DnsServer>().EndPoint!;

    /// <summary>A Service with several cluster IPs (dual stack) and named ports.</summary>
    public static JsonObject DualStackService(string ns, string name, string[] clusterIps, params (string Name, int Port, int TargetPort, string Protocol)[] ports)
    {
        var service = FakeKubeApiServer.Service(ns, name, clusterIps[0], ports);
        service["spec"]!["clusterIPs"] = new JsonArray([.. clusterIps.Select(ip => (JsonNode)ip)]);
        return service;
    }

    /// <summary>A headless Service (clusterIP: None).</summary>
    public static JsonObject HeadlessService(string ns, string name, params (string Name, int Port, int TargetPort, string Protocol)[] ports)
        => FakeKubeApiServer.Service(ns, name, "None", ports);

    /// <summary>Asks until dig's answer satisfies <paramref name="condition"/> (discovery is asynchronous).</summary>
    public static async Task<DigResult> EventuallyAsync(IPEndPoint server, string name, string type, Func<DigResult, bool> condition, string because, params string[] options)
    {
        var deadline = DateTime.UtcNow + Eventually.DefaultTimeout;
        while (true)
        {
            var result = await Dig.QueryAsync(server, name, type, options);
            if (condition(result))
            {
                return result;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting until {because}; the last answer:\n{result}");
            }

            await Task.Delay(50);
        }
    }
}
