using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Locality;

/// <summary>
/// Nodes a1 and a2 of zone A and b1 of zone B as network namespaces, each with a backend; the
/// forwarder runs as node a1's proxy. Traffic stays on a1, moves to a2 when a1's backend dies,
/// to b1 only when zone A has none left, and comes back as they return.
/// </summary>
public sealed class LocalityNamespaceTests
{
    private const int Port = 8080;
    private const int Connections = 30;

    [Fact]
    public async Task NodeA1_StaysLocal_SpillsToItsZone_ThenTheOtherZone_AndBack()
    {
        using var lab = new LocalityLab("a1", "a2", "b1");
        await using var a1 = Backend(lab, "a1");
        await using var a2 = Backend(lab, "a2");
        await using var b1 = Backend(lab, "b1");
        await using var forwarder = await RunningForwarder.StartAsync($$"""
            admin: { listen: 127.0.0.1:0 }
            locality: { node: a1, zone: zone-a }
            listeners:
              - { name: web, listen: 127.0.0.1:0, protocol: tcp, service: web }
            services:
              web:
                lb: { policy: least_request }
                healthCheck: { type: tcp, interval: 200ms, timeout: 2s, healthyThreshold: 1, unhealthyThreshold: 1 }
                connectTimeout: 5s
                endpoints:
                  - { address: '{{a1.EndPoint}}', node: a1, zone: zone-a }
                  - { address: '{{a2.EndPoint}}', node: a2, zone: zone-a }
                  - { address: '{{b1.EndPoint}}', node: b1, zone: zone-b }
            """);

        await AllReachAsync(forwarder, 3, "a1", "every backend is up: the one on this node takes all");

        await a1.KillAsync();
        await AllReachAsync(forwarder, 2, "a2", "this node's backend died: its zone's other node takes over, not zone B");

        await a2.KillAsync();
        await AllReachAsync(forwarder, 1, "b1", "zone A has no backend left: zone B takes over");

        a2.Start();
        await AllReachAsync(forwarder, 2, "a2", "zone A has one again");

        a1.Start();
        await AllReachAsync(forwarder, 3, "a1", "back on this node");

        var metrics = PrometheusText.Render(forwarder.Metrics, forwarder.Runtime);
        foreach (var level in new[] { "node", "zone", "other" })
        {
            var picks = Regex.Match(metrics, $"^forwarder_lb_locality_picks_total\\{{service=\"web\",level=\"{level}\"\\}} (\\d+)$", RegexOptions.Multiline);
            Assert.True(picks.Success && long.Parse(picks.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, $"no {level} picks in:\n{metrics}");
        }
    }

    private static NodeBackend Backend(LocalityLab lab, string node) => new(node, lab.Namespaces[node], new IPEndPoint(lab.Addresses[node], Port));

    /// <summary>
    /// Waits until health checks see <paramref name="available"/> backends, then requires the
    /// next <see cref="Connections"/> to reach <paramref name="node"/> on the balancer's first
    /// pick (no connect refused and retried elsewhere).
    /// </summary>
    private static async Task AllReachAsync(RunningForwarder forwarder, int available, string node, string because)
    {
        await Eventually.TrueAsync(() => forwarder.Runtime.Services["web"].Balancer.AvailableCount == available, $"{available} backends pass their checks", TimeSpan.FromSeconds(60));
        var refused = forwarder.Metrics.Service("web").ConnectErrors(ConnectFailure.Refused);
        for (var i = 0; i < Connections; i++)
        {
            Assert.True(node == await ReachedAsync(forwarder.EndPoint("web")), because);
        }

        Assert.Equal(refused, forwarder.Metrics.Service("web").ConnectErrors(ConnectFailure.Refused));
    }

    /// <summary>The name of the node whose backend answered a new connection; null when the forwarder closed it.</summary>
    private static async Task<string?> ReachedAsync(IPEndPoint listener)
    {
        using var socket = await SocketClient.ConnectAsync(listener);
        var buffer = new byte[16];
        var length = 0;
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None)) > 0)
            {
                length += read;
            }
        }
        catch (SocketException)
        {
            return null;
        }

        var reply = Encoding.ASCII.GetString(buffer, 0, length);
        return reply.EndsWith('\n') ? reply.TrimEnd('\n') : null;
    }
}
