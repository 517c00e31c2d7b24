using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Runtime;

/// <summary>Services nothing refers to get no model: no pools, no balancer, no health checks against their endpoints.</summary>
public sealed class ServiceReferencesTests
{
    private static string Config(string frontService, TcpTestServer used, TcpTestServer spare) => $"""
        listeners:
          - {"{"} name: front, listen: '127.0.0.1:0', service: {frontService} {"}"}
        services:
          back:
            healthCheck: {"{"} type: tcp, interval: 100ms, timeout: 2s {"}"}
            endpoints:
              - address: {used.Address}
          spare:
            healthCheck: {"{"} type: tcp, interval: 100ms, timeout: 2s {"}"}
            endpoints:
              - address: {spare.Address}
        """;

    [Fact]
    public async Task Apply_UnreferencedServiceWithHealthChecks_IsNotBuiltUntilAReloadRefersToIt()
    {
        await using var used = new TcpTestServer(CloseAsync);
        await using var spare = new TcpTestServer(CloseAsync);
        await using var forwarder = await RunningForwarder.StartAsync(Config("back", used, spare));

        // The referenced service's checks run on the same interval; by their third, spare's would have run too.
        await Eventually.TrueAsync(() => forwarder.Runtime.Services["back"].Endpoints[0].Health.ChecksPassed >= 3, "the used service is checked");
        Assert.Equal(0, spare.AcceptedCount);
        Assert.False(forwarder.Runtime.Services.ContainsKey("spare"));

        Assert.True(await forwarder.ReloadAsync(Config("spare", used, spare)));

        await Eventually.TrueAsync(() => spare.AcceptedCount > 0, "the service a listener now refers to is checked");
        Assert.False(forwarder.Runtime.Services.ContainsKey("back"));
    }

    [Fact]
    public void Used_RouteBackendsAndExportedServices_CountAsUsed()
    {
        var parsed = ConfigLoader.Parse(
            """
            listeners:
              - name: web
                listen: 127.0.0.1:0
                protocol: http
                routes:
                  - { name: all, split: [ { service: blue, weight: 90 }, { service: green, weight: 10 } ] }
            services:
              blue: { endpoints: [ { address: '127.0.0.1:1' } ] }
              green: { endpoints: [ { address: '127.0.0.1:2' } ] }
              shared: { endpoints: [ { address: '127.0.0.1:3' } ] }
              idle: { endpoints: [ { address: '127.0.0.1:4' } ] }
            """,
            "used.yaml");

        // export: true needs a node section and its certificates; what matters here is the flag.
        var services = parsed.Services.ToDictionary(s => s.Key, s => s.Key == "shared" ? s.Value with { Export = true } : s.Value, StringComparer.Ordinal);
        var config = parsed with { Services = services };

        Assert.Equal(["blue", "green", "shared"], ServiceReferences.Used(config).Order(StringComparer.Ordinal));
    }

    private static Task CloseAsync(Socket socket)
    {
        socket.Close();
        return Task.CompletedTask;
    }
}
