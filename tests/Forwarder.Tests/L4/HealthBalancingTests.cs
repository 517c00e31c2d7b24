using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Forwarder.Metrics;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L4;

/// <summary>Health through the whole forwarder: backends that fail leave the rotation and come back once they recover.</summary>
public sealed class HealthBalancingTests
{
    private static TcpTestServer Named(string name, int port = 0) => new(
        async socket =>
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes(name), SocketFlags.None);
            socket.Shutdown(SocketShutdown.Send);
        },
        port: port);

    private static string Config(string serviceSettings, params TcpTestServer[] backends) => $"""
        admin: {"{"} listen: 127.0.0.1:0 {"}"}
        listeners:
          - {"{"} name: front, listen: '127.0.0.1:0', service: back {"}"}
        services:
          back:
            connectAttempts: 2
        {serviceSettings}
            endpoints:
        {string.Join("\n", backends.Select(b => $"      - address: {b.Address}"))}
        """;

    [Fact]
    public async Task OutlierDetection_BackendStartsRefusing_EjectedThenBackAfterRecovery()
    {
        await using var a = Named("a");
        var b = Named("b");
        var port = b.EndPoint.Port;
        var settings = """
                lb: { policy: round_robin }
                outlierDetection: { consecutiveFailures: 2, baseEjectionTime: 4s, maxEjectionPercent: 50 }
            """;
        await using var forwarder = await RunningForwarder.StartAsync(Config(settings, a, b));
        var front = forwarder.EndPoint("front");
        var service = forwarder.Runtime.Services["back"];
        var bHealth = service.Endpoints[1].Health;
        Assert.Equal(["a", "b"], (await AskManyAsync(front, 4)).Distinct().Order());

        await b.DisposeAsync();

        // Every client is still served: each refused attempt fails over to a, and two in a row eject b.
        Assert.All(await AskManyAsync(front, 6), answer => Assert.Equal("a", answer));
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 1, "b is ejected");
        Assert.True(bHealth.Ejected);
        Assert.Equal(1, bHealth.Ejections);

        // While ejected, b is not even tried.
        var refused = service.Metrics.ConnectErrors(ConnectFailure.Refused);
        Assert.All(await AskManyAsync(front, 6), answer => Assert.Equal("a", answer));
        Assert.True(bHealth.Ejected, "the ejection outlasted the six requests");
        Assert.Equal(refused, service.Metrics.ConnectErrors(ConnectFailure.Refused));

        await using var recovered = Named("b", port);
        await Eventually.TrueAsync(async () => (await AskAsync(front)) == "b", "b takes traffic again after its ejection");
        Assert.False(bHealth.Ejected);
    }

    [Fact]
    public async Task ActiveChecks_BackendDown_NeverPickedUntilItPassesAgain()
    {
        await using var a = Named("a");
        var b = Named("b");
        var port = b.EndPoint.Port;
        var settings = """
                lb: { policy: least_request }
                healthCheck: { type: tcp, interval: 100ms, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
            """;
        await using var forwarder = await RunningForwarder.StartAsync(Config(settings, a, b));
        var front = forwarder.EndPoint("front");
        var service = forwarder.Runtime.Services["back"];
        await Eventually.TrueAsync(() => service.Endpoints.All(e => e.Health.Check == LoadBalancing.Health.HealthCheckState.Healthy), "both pass their first check");

        await b.DisposeAsync();
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 1, "b fails its check");

        var refused = service.Metrics.ConnectErrors(ConnectFailure.Refused);
        Assert.All(await AskManyAsync(front, 10), answer => Assert.Equal("a", answer));
        Assert.Equal(refused, service.Metrics.ConnectErrors(ConnectFailure.Refused));

        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };
        using (var config = JsonDocument.Parse(await http.GetStringAsync("/config")))
        {
            var back = config.RootElement.GetProperty("config").GetProperty("services").GetProperty("back");
            Assert.Equal(1, back.GetProperty("availableEndpoints").GetInt32());
            Assert.False(back.GetProperty("panic").GetBoolean());
            var down = back.GetProperty("endpoints")[1];
            Assert.False(down.GetProperty("healthy").GetBoolean());
            Assert.Equal("unhealthy", down.GetProperty("check").GetString());
            Assert.Equal("connection refused", down.GetProperty("lastCheckFailure").GetString());
            Assert.Equal("tcp", back.GetProperty("healthCheck").GetProperty("type").GetString());
        }

        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains($"forwarder_endpoint_healthy{{service=\"back\",endpoint=\"{a.Address}\"}} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains($"forwarder_endpoint_healthy{{service=\"back\",endpoint=\"127.0.0.1:{port}\"}} 0\n", metrics, StringComparison.Ordinal);
        Assert.Contains("forwarder_service_endpoints_available{service=\"back\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Matches($"forwarder_endpoint_health_checks_total\\{{service=\"back\",endpoint=\"127.0.0.1:{port}\",result=\"failed\"\\}} [1-9]", metrics);

        await using var recovered = Named("b", port);
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 2, "b passes its check again");
        await Eventually.TrueAsync(async () => (await AskAsync(front)) == "b", "b takes traffic again");
    }

    [Fact]
    public async Task PanicThresholdZero_NoEndpointHealthy_ClosesClientWithoutDialing()
    {
        var a = Named("a");
        var settings = """
                lb: { panicThreshold: 0 }
                healthCheck: { interval: 100ms, unhealthyThreshold: 1 }
            """;
        await using var forwarder = await RunningForwarder.StartAsync(Config(settings, a));
        var service = forwarder.Runtime.Services["back"];
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 1, "a passes its first check");
        await a.DisposeAsync();
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 0, "a fails its check");

        var refused = service.Metrics.ConnectErrors(ConnectFailure.Refused);
        Assert.Equal(string.Empty, await AskAsync(forwarder.EndPoint("front")));
        Assert.Equal(1, service.Metrics.NoneAvailableCount);
        Assert.Equal(refused, service.Metrics.ConnectErrors(ConnectFailure.Refused));
    }

    [Fact]
    public async Task DefaultPanicThreshold_EveryEndpointUnhealthy_StillTriesThem()
    {
        var a = Named("a");
        var settings = """
                healthCheck: { interval: 100ms, unhealthyThreshold: 1, healthyThreshold: 1 }
            """;
        await using var forwarder = await RunningForwarder.StartAsync(Config(settings, a));
        var port = a.EndPoint.Port;
        var service = forwarder.Runtime.Services["back"];
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 1, "a passes its first check");
        await a.DisposeAsync();
        await Eventually.TrueAsync(() => service.Balancer.Panic, "a fails its check and the service panics");

        // The check has not seen it yet, but in panic the balancer tries a anyway: it is back.
        await using var back = Named("a", port);
        Assert.Equal("a", await AskAsync(forwarder.EndPoint("front")));
    }

    [Fact]
    public async Task Reload_KeptEndpoint_KeepsItsHealth()
    {
        await using var a = Named("a");
        var b = Named("b");
        await using var c = Named("c");
        var settings = """
                healthCheck: { interval: 100ms, unhealthyThreshold: 1 }
            """;
        await using var forwarder = await RunningForwarder.StartAsync(Config(settings, a, b));
        var service = forwarder.Runtime.Services["back"];
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 2, "both pass their first check");
        var aHealth = service.Endpoints[0].Health;
        await b.DisposeAsync();
        await Eventually.TrueAsync(() => service.Balancer.AvailableCount == 1, "b fails its check");

        Assert.True(await forwarder.ReloadAsync(Config(settings, a, c, b)));

        var reloaded = forwarder.Runtime.Services["back"];
        Assert.Same(aHealth, reloaded.Endpoints[0].Health);
        Assert.Equal(LoadBalancing.Health.HealthCheckState.Unhealthy, reloaded.Endpoints[2].Health.Check);
        await Eventually.TrueAsync(() => reloaded.Balancer.AvailableCount == 2, "the new endpoint c passes its first check");
        Assert.All(await AskManyAsync(forwarder.EndPoint("front"), 6), answer => Assert.NotEqual("b", answer));
    }

    private static async Task<string[]> AskManyAsync(IPEndPoint front, int count)
    {
        var answers = new string[count];
        for (var i = 0; i < count; i++)
        {
            answers[i] = await AskAsync(front);
        }

        return answers;
    }

    private static async Task<string> AskAsync(IPEndPoint front)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(front);
        return Encoding.ASCII.GetString(await SocketClient.ReceiveToEndAsync(socket));
    }
}
