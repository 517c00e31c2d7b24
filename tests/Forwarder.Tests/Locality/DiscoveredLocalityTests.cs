using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Forwarder.Tests.Cluster;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.Cluster.ClusterTestKit;

namespace Forwarder.Tests.Locality;

/// <summary>Topology from EndpointSlices (nodeName, zone), served by the fake API server, reaches the balancer.</summary>
public sealed class DiscoveredLocalityTests
{
    private const string Service = "default/web:80";

    [Fact]
    public async Task SliceTopology_PrefersThisNodeThenItsZone_ZoneLearnedFromTheSlice()
    {
        await using var a = Backend('A', IPAddress.Parse("127.0.0.2"));
        await using var b = Backend('B', IPAddress.Parse("127.0.0.3"), a.EndPoint.Port);
        await using var c = Backend('C', IPAddress.Parse("127.0.0.4"), a.EndPoint.Port);
        await using var api = new FakeKubeApiServer();
        var port = a.EndPoint.Port;
        api.Put(FakeKubeApiServer.Service("default", "web", "10.96.0.10", ("http", 80, port, "TCP")));
        api.Put(Slice(port, aReady: true, bReady: true, cReady: true));
        await api.StartAsync();

        // This node is node-b; no zone is configured: node-b's endpoint in the slice says zone-2.
        await using var forwarder = await RunningForwarder.StartAsync($"""
            locality: {"{"} node: node-b {"}"}
            {Config(api.Url)}
            """);
        var listener = forwarder.EndPoint("web");

        await ReachesAsync(listener, 'B', "the endpoint on this node takes traffic");
        await AssertAllReachAsync(listener, 'B');
        using (var http = new HttpClient { BaseAddress = forwarder.AdminAddress })
        {
            using var config = JsonDocument.Parse(await http.GetStringAsync("/config"));
            var service = config.RootElement.GetProperty("config").GetProperty("services").GetProperty(Service);
            var locality = service.GetProperty("lb").GetProperty("locality");
            Assert.Equal("node-b", locality.GetProperty("node").GetString());
            Assert.Equal("zone-2", locality.GetProperty("zone").GetString());
            Assert.Equal(["node", "zone", "other"], locality.GetProperty("levels").EnumerateArray().Select(l => l.GetString()));
            var levels = service.GetProperty("endpoints").EnumerateArray().ToDictionary(e => e.GetProperty("address").GetString()!, e => e.GetProperty("level").GetString());
            Assert.Equal("other", levels[$"127.0.0.2:{port}"]);
            Assert.Equal("node", levels[$"127.0.0.3:{port}"]);
            Assert.Equal("zone", levels[$"127.0.0.4:{port}"]);
        }

        // This node's pod stops being ready: its zone's other node, never the far zone.
        api.Put(Slice(port, aReady: true, bReady: false, cReady: true));
        await ReachesAsync(listener, 'C', "the zone's other endpoint takes over");
        await AssertAllReachAsync(listener, 'C');

        api.Put(Slice(port, aReady: true, bReady: false, cReady: false));
        await ReachesAsync(listener, 'A', "the other zone is the last resort");

        api.Put(Slice(port, aReady: true, bReady: true, cReady: true));
        await ReachesAsync(listener, 'B', "back on this node once its pod is ready");
        await AssertAllReachAsync(listener, 'B');

        var metrics = PrometheusText.Render(forwarder.Metrics, forwarder.Runtime);
        foreach (var level in new[] { "node", "zone", "other" })
        {
            Assert.True(Picks(metrics, level) > 0, $"no {level} picks counted in:\n{metrics}");
        }
    }

    private static System.Text.Json.Nodes.JsonObject Slice(int port, bool aReady, bool bReady, bool cReady) => FakeKubeApiServer.Slice(
        "default", "web", "web-abc12", "http", port, ("127.0.0.2", "node-a", "zone-1", aReady), ("127.0.0.3", "node-b", "zone-2", bReady), ("127.0.0.4", "node-c", "zone-2", cReady));

    private static async Task AssertAllReachAsync(IPEndPoint listener, char id)
    {
        for (var i = 0; i < 20; i++)
        {
            var (socket, reached) = await ConnectAsync(listener);
            socket.Dispose();
            Assert.Equal(id, reached);
        }
    }

    private static long Picks(string metrics, string level)
    {
        var match = Regex.Match(metrics, $"^forwarder_lb_locality_picks_total\\{{service=\"{Regex.Escape(Service)}\",level=\"{level}\"\\}} (\\d+)$", RegexOptions.Multiline);
        return match.Success ? long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }
}
