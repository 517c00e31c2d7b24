using System.Net;
using System.Text.Json;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Admin;

public sealed class AdminServerTests
{
    private static string Config(string backend) => $"""
        admin: {"{"} listen: 127.0.0.1:0 {"}"}
        listeners:
          - name: front
            listen: 127.0.0.1:0
            protocol: tcp
            service: back
        services:
          back:
            endpoints:
              - address: {backend}
        """;

    [Fact]
    public async Task HealthAndReadiness_WhenRunning_AreOk()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };

        Assert.Equal("ok\n", await http.GetStringAsync("/healthz"));
        Assert.Equal("ready\n", await http.GetStringAsync("/readyz"));
    }

    [Fact]
    public async Task Readyz_AfterATypeFailedToInitialize_Is503NamingTheType()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };
        Assert.Equal("ready\n", await http.GetStringAsync("/readyz"));

        // As a connection's handler would see it: wrapped, from a static constructor that hit EMFILE.
        var failed = new TypeInitializationException("Forwarder.Example", new IOException("Too many open files"));
        Assert.True(forwarder.Runtime.Faults.Observe(new InvalidOperationException("handler failed", failed)));

        using var response = await http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("broken: type Forwarder.Example failed to initialize; restart the process\n", await response.Content.ReadAsStringAsync());
        Assert.Equal("ok\n", await http.GetStringAsync("/healthz"));
    }

    [Fact]
    public async Task Metrics_AfterTraffic_ExportsCountersInPrometheusFormat()
    {
        await using var backend = TcpTestServer.Echo();
        await using var forwarder = await RunningForwarder.StartAsync(Config(backend.Address));
        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };
        using (var client = await SocketClient.ConnectAsync(forwarder.EndPoint("front")))
        {
            await SocketClient.AssertEchoAsync(client, "12345");
        }

        await Eventually.TrueAsync(() => forwarder.Metrics.Listener("front").Active == 0, "the connection is closed");
        using var response = await http.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.Contains("# TYPE forwarder_listener_connections_total counter", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_listener_connections_total{listener=\"front\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_listener_connections_active{listener=\"front\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_listener_bytes_total{listener=\"front\",direction=\"rx\"} 5\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_service_bytes_total{service=\"back\",direction=\"tx\"} 5\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_upstream_connect_errors_total{service=\"back\",reason=\"refused\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_upstream_connect_duration_seconds_bucket{service=\"back\",le=\"+Inf\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_upstream_connect_duration_seconds_count{service=\"back\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_config_reloads_total{result=\"ok\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE forwarder_process_allocated_bytes_total counter", text, StringComparison.Ordinal);
        Assert.Contains("forwarder_process_gc_collections_total{generation=\"0\"} ", text, StringComparison.Ordinal);
        Assert.All(text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')),
            line => Assert.Matches(@"^[a-z_]+(\{[^}]*\})? -?[0-9.eE+-]+$", line));
    }

    [Fact]
    public async Task Config_ShowsEffectiveConfigBoundAddressAndReloadStatus()
    {
        await using var backend = TcpTestServer.Echo();
        var yaml = Config(backend.Address).Replace("services:", """
              - name: web
                listen: 127.0.0.1:0
                protocol: http
                http: { bodyTimeout: 7s, pathNormalization: full, maxBodySize: 1MiB }
                routes:
                  - { name: sockets, match: { path: { prefix: /ws } }, service: back, websocket: false, timeout: 3s, retries: { attempts: 2, on: [reset, 503] } }
                  - { name: rest, service: back }
            services:
            """, StringComparison.Ordinal);
        await using var forwarder = await RunningForwarder.StartAsync(yaml);
        using var http = new HttpClient { BaseAddress = forwarder.AdminAddress };

        using (var ok = JsonDocument.Parse(await http.GetStringAsync("/config")))
        {
            var web = ok.RootElement.GetProperty("config").GetProperty("listeners")[1];
            var settings = web.GetProperty("http");
            Assert.Equal(("7s", "full", 1048576L), (settings.GetProperty("bodyTimeout").GetString(), settings.GetProperty("pathNormalization").GetString(), settings.GetProperty("maxBodySize").GetInt64()));
            var sockets = web.GetProperty("routes")[0];
            Assert.Equal(("sockets", false, "3s"), (sockets.GetProperty("name").GetString(), sockets.GetProperty("websocket").GetBoolean(), sockets.GetProperty("timeout").GetString()));
            Assert.Equal(["reset", "503"], sockets.GetProperty("retries").GetProperty("on").EnumerateArray().Select(e => e.GetString()));
            var rest = web.GetProperty("routes")[1];
            Assert.True(rest.GetProperty("websocket").GetBoolean());
            Assert.Equal("back", rest.GetProperty("split")[0].GetProperty("service").GetString());

            var root = ok.RootElement;
            Assert.Equal("ok", root.GetProperty("reload").GetProperty("status").GetString());
            var listener = root.GetProperty("config").GetProperty("listeners")[0];
            Assert.Equal("front", listener.GetProperty("name").GetString());
            Assert.Equal(forwarder.EndPoint("front").ToString(), listener.GetProperty("boundAddress").GetString());
            var endpoint = root.GetProperty("config").GetProperty("services").GetProperty("back").GetProperty("endpoints")[0];
            Assert.Equal(backend.Address, endpoint.GetProperty("address").GetString());
            Assert.Equal("5s", root.GetProperty("config").GetProperty("services").GetProperty("back").GetProperty("connectTimeout").GetString());
        }

        await File.WriteAllTextAsync(forwarder.ConfigPath, yaml.Replace("service: back", "service: gone", StringComparison.Ordinal));
        using var reload = await http.PostAsync("/reload", content: null);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reload.StatusCode);

        using var failed = JsonDocument.Parse(await http.GetStringAsync("/config"));
        var status = failed.RootElement.GetProperty("reload");
        Assert.Equal("failed", status.GetProperty("status").GetString());
        Assert.Contains("listeners[0].service: no service named 'gone'", status.GetProperty("errors")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal("back", failed.RootElement.GetProperty("config").GetProperty("listeners")[0].GetProperty("service").GetString());
    }
}
