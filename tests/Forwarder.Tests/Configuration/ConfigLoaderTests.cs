using Forwarder.Configuration;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.LoadBalancing.Health;

namespace Forwarder.Tests.Configuration;

public sealed class ConfigLoaderTests
{
    private const string Services = """
        services:
          echo:
            endpoints:
              - address: 127.0.0.1:9000
        """;

    [Fact]
    public void Parse_IssueExample_ReadsEveryField()
    {
        var config = ConfigLoader.Parse("""
            admin: { listen: 127.0.0.1:9901 }
            listeners:
              - name: echo
                listen: 127.0.0.1:7000
                protocol: tcp            # tcp now; http comes with the L7 issue
                service: echo
            services:
              echo:
                lb: { policy: round_robin }
                connectTimeout: 2s
                idleTimeout: 5m
                endpoints:
                  - address: 127.0.0.1:9000
                    weight: 1
            """, "example.yaml");

        Assert.Equal("127.0.0.1:9901", config.Admin!.Listen);
        var listener = Assert.Single(config.Listeners);
        Assert.Equal(("echo", "127.0.0.1:7000", ListenerProtocol.Tcp, "echo"), (listener.Name, listener.Listen, listener.Protocol, listener.Service));
        var service = config.Services["echo"];
        Assert.Equal("round_robin", service.Lb.Policy);
        Assert.Equal(65537, service.Lb.Hashing.TableSize);
        Assert.Equal(TimeSpan.FromSeconds(2), service.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMinutes(5), service.IdleTimeout);
        Assert.Equal(("127.0.0.1:9000", 1), (service.Endpoints[0].Address, service.Endpoints[0].Weight));
    }

    [Fact]
    public void Parse_Defaults_AreSane()
    {
        var config = ConfigLoader.Parse("listeners:\n  - { name: a, listen: '127.0.0.1:7000', service: echo }\n" + Services, "d.yaml");

        Assert.Null(config.Admin);
        Assert.Equal(TimeSpan.FromSeconds(30), config.DrainTimeout);
        Assert.True(config.Tcp.NoDelay);
        Assert.Equal(TcpEngine.Epoll, config.Tcp.Engine);
        Assert.Equal(64 * 1024, config.Tcp.BlockSize);
        Assert.Equal(ListenerProtocol.Tcp, config.Listeners[0].Protocol);
        Assert.Equal(ConfigLoader.DefaultMaxConnections, config.Listeners[0].MaxConnections);
        Assert.Equal(TimeSpan.FromSeconds(5), config.Services["echo"].ConnectTimeout);
        Assert.Equal(3, config.Services["echo"].ConnectAttempts);
    }

    [Theory]
    [InlineData("listeners: [\n  { name: a, listen: 127.0.0.1:7000, service: echo\n", "bad.yaml:1:12", "invalid YAML: a [ ] or { } collection near here is not closed")]
    [InlineData("listeners:\n  - name: a\n   listen: 127.0.0.1:7000\n", "bad.yaml:3:", "invalid YAML")]
    [InlineData("listeners:\n  - name: a\n    listen: 127.0.0.1:99999\n    service: echo\n", "bad.yaml:3:13", "listeners[0].listen: expected IP:PORT such as 127.0.0.1:7000")]
    [InlineData("listeners:\n  - name: a\n    listen: localhost:7000\n    service: echo\n", "bad.yaml:3:13", "listeners[0].listen: expected IP:PORT")]
    [InlineData("listeners:\n  - name: a\n    listen: 127.0.0.1:7000\n    service: nope\n", "bad.yaml:4:14", "listeners[0].service: no service named 'nope' (defined: echo)")]
    [InlineData("listeners:\n  - name: a\n    listen: 127.0.0.1:7000\n", "bad.yaml:2:5", "listeners[0].service: is required for a tcp listener")]
    [InlineData("listeners:\n  - listen: 127.0.0.1:7000\n    service: echo\n", "bad.yaml:2:5", "listeners[0].name: is required")]
    [InlineData("listeners:\n  - name: a\n    listen: 127.0.0.1:7000\n    service: echo\n    protocol: sctp\n", "bad.yaml:5:15", "listeners[0].protocol: expected tcp, udp, http or echo, got 'sctp'")]
    [InlineData("listeners:\n  - name: a\n    listen: 127.0.0.1:7000\n    service: echo\n    servce: echo\n", "bad.yaml:5:5", "listeners[0].servce: unknown field; expected one of: name, listen, protocol, service, maxConnections")]
    [InlineData("listeners:\n  - name: a\n    Listen: 127.0.0.1:7000\n    service: echo\n", "bad.yaml:3:5", "listeners[0].Listen: unknown field; did you mean 'listen'?")]
    [InlineData("listeners:\n  - name: a\n    listen: 127.0.0.1:7000\n    service: echo\n    maxConnections: lots\n", "bad.yaml:5:21", "listeners[0].maxConnections: expected a whole number from 1 to 10000000, got 'lots'")]
    [InlineData("listeners:\n  - { name: a, listen: '127.0.0.1:7000', service: echo }\n  - { name: a, listen: '127.0.0.1:7001', service: echo }\n", "bad.yaml:3:13", "listeners[1].name: another listener is already named 'a'")]
    [InlineData("listeners:\n  - { name: a, listen: '127.0.0.1:7000', service: echo }\n  - { name: b, listen: '127.0.0.1:7000', service: echo }\n", "bad.yaml:3:24", "listeners[1].listen: another listener already listens on 127.0.0.1:7000")]
    [InlineData("listeners:\n  - { name: a, listen: '127.0.0.1:7000', protocol: echo, service: echo }\n", "bad.yaml:2:67", "listeners[0].service: an echo listener answers by itself and takes no service")]
    [InlineData("listeners: {}\n", "bad.yaml:1:12", "listeners: expected a list")]
    [InlineData("drainTimeout: soon\nlisteners: []\n", "bad.yaml:1:15", "drainTimeout: expected a duration such as 500ms, 2s, 5m or 1h, got 'soon'")]
    [InlineData("admin: { listen: nowhere }\nlisteners: []\n", "bad.yaml:1:18", "admin.listen: expected IP:PORT such as 127.0.0.1:9901, got 'nowhere'")]
    [InlineData("tcp: { blockSize: 1 }\nlisteners: []\n", "bad.yaml:1:19", "tcp.blockSize: expected a size in bytes from 1024 to 1048576")]
    [InlineData("services: {}\n", "bad.yaml:1:1", "listeners: is required")]
    [InlineData("listen: 1\nlisteners: []\n", "bad.yaml:1:1", "listen: unknown field; expected one of: admin, drainTimeout, shutdownDelay, limits, tcp, node, locality, cluster, dns, intercept, listeners, services")]
    [InlineData("listeners: []\n---\nlisteners: []\n", "bad.yaml:2:1", "a second YAML document starts here ('---'); a config file holds exactly one")]
    [InlineData("---\nlisteners: []\n...\n---\n", "bad.yaml:4:1", "a second YAML document starts here")]
    public void Parse_InvalidListenersOrGlobals_NamesFileLineAndField(string yaml, string location, string message)
        => AssertSingleError(yaml + (yaml.Contains("services:", StringComparison.Ordinal) ? string.Empty : Services), location, message, allowMore: message.Contains("did you mean", StringComparison.Ordinal));

    [Theory]
    [InlineData("    endpoints: []\n", "bad.yaml:5:16", "services.echo.endpoints: needs at least one endpoint")]
    [InlineData("    lb: { policy: fastest }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:19", "services.echo.lb.policy: unknown policy 'fastest'; expected one of: round_robin, random, least_request")]
    [InlineData("    connectTimeout: 0\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:21", "services.echo.connectTimeout: expected a duration such as 500ms, 2s, 5m or 1h (at least 1ms), got '0'")]
    [InlineData("    endpoints:\n      - address: 127.0.0.1\n", "bad.yaml:6:18", "services.echo.endpoints[0].address: expected HOST:PORT such as 127.0.0.1:9000")]
    [InlineData("    endpoints:\n      - address: 127.0.0.1:9000\n        weight: 0\n", "bad.yaml:7:17", "services.echo.endpoints[0].weight: expected a whole number from 1 to 10000, got '0'")]
    [InlineData("    endpoints:\n      - address: 127.0.0.1:9000\n      - address: 127.0.0.1:9000\n", "bad.yaml:7:18", "services.echo.endpoints[1].address: '127.0.0.1:9000' is listed twice")]
    [InlineData("    endpoints:\n      - weight: 2\n", "bad.yaml:6:9", "services.echo.endpoints[0].address: is required")]
    [InlineData("    idleTimeout: 5 minutes\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:18", "services.echo.idleTimeout: expected a duration")]
    [InlineData("    endpoint: []\n", "bad.yaml:5:5", "services.echo.endpoint: unknown field")]
    [InlineData("    lb: { policy: maglev, hashBalanceFactor: 90 }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:46", "services.echo.lb.hashBalanceFactor: 90 is below 100")]
    [InlineData("    lb: { policy: maglev, tableSize: 65536 }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:38", "services.echo.lb.tableSize: 65536 is not prime")]
    [InlineData("    lb: { policy: ring_hash, minRingSize: 4096, maxRingSize: 1024 }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:43", "services.echo.lb.minRingSize: 4096 is above maxRingSize (1024)")]
    [InlineData("    lb: { policy: round_robin, hash: [ sourceIp ] }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.lb.hash: policy round_robin does not hash; use ring_hash or maglev")]
    [InlineData("    lb: { policy: maglev, hash: [ hostname ] }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.lb.hash[0]: expected one of: sourceIp, path, url, header: NAME")]
    [InlineData("    lb: { policy: maglev, hash: [ { header: 'x user' } ] }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.lb.hash[0].header: expected a header name")]
    [InlineData("    lb: { policy: maglev, hash: [ path, path ] }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.lb.hash[1]: is listed twice")]
    [InlineData("    lb: { policy: maglev, hash: [ { cookie: { name: sid, ttl: 1h } } ] }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.lb.hash[0].cookie.generate: ttl and path describe the cookie the proxy generates")]
    [InlineData("    lb: { panicThreshold: 150 }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.lb.panicThreshold: expected a whole number from 0 to 100, got '150'")]
    [InlineData("    healthCheck: { type: udp }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.healthCheck.type: expected tcp or http, got 'udp'")]
    [InlineData("    healthCheck: { path: /healthz }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.healthCheck: path and host belong to an http check")]
    [InlineData("    healthCheck: { type: http, path: '/a b' }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.healthCheck.path: expected a path such as /healthz")]
    [InlineData("    healthCheck: { interval: 1ms }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.healthCheck.interval: expected a duration such as 500ms, 2s, 5m or 1h (at least 10ms)")]
    [InlineData("    healthCheck: { unhealthyThreshold: 0 }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.healthCheck.unhealthyThreshold: expected a whole number from 1 to 1000")]
    [InlineData("    outlierDetection: { baseEjectionTime: 1m, maxEjectionTime: 30s }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.outlierDetection.maxEjectionTime: 30s is below baseEjectionTime (1m)")]
    [InlineData("    outlierDetection: { maxEjectionPercent: 101 }\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "bad.yaml:5:", "services.echo.outlierDetection.maxEjectionPercent: expected a whole number from 0 to 100")]
    public void Parse_InvalidService_NamesFileLineAndField(string serviceBody, string location, string message)
        => AssertSingleError("listeners:\n  - { name: a, listen: '127.0.0.1:7000', service: echo }\nservices:\n  echo:\n" + serviceBody, location, message, allowMore: serviceBody.Contains("endpoint: []", StringComparison.Ordinal));

    [Fact]
    public void Parse_HealthAndHashing_ReadsEveryField()
    {
        var config = ConfigLoader.Parse("""
            listeners:
              - { name: web, listen: 127.0.0.1:7000, service: web }
            services:
              web:
                lb:
                  policy: maglev
                  panicThreshold: 30
                  hash:
                    - header: X-User
                    - cookie: { name: sid, generate: true, ttl: 1h, path: /app }
                    - cookie: plain
                    - query: id
                    - path
                    - url
                    - sourceIp
                healthCheck:
                  type: http
                  path: /healthz?deep=1
                  host: web.internal
                  interval: 2s
                  timeout: 500ms
                  healthyThreshold: 1
                  unhealthyThreshold: 4
                  jitter: 200ms
                outlierDetection:
                  consecutiveFailures: 3
                  baseEjectionTime: 10s
                endpoints: [ { address: '127.0.0.1:9000' } ]
            """, "health.yaml");

        var service = config.Services["web"];
        Assert.Equal(30, service.Lb.PanicThreshold);
        Assert.Equal(
            [
                new HashKey(HashKeySource.Header, "x-user"),
                new HashKey(HashKeySource.Cookie, "sid", new CookieAffinity(TimeSpan.FromHours(1), "/app")),
                new HashKey(HashKeySource.Cookie, "plain"),
                new HashKey(HashKeySource.Query, "id"),
                new HashKey(HashKeySource.Path),
                new HashKey(HashKeySource.Url),
                HashKey.SourceIp,
            ],
            service.Lb.HashKeys);
        Assert.Equal(
            new HealthCheckOptions(HealthCheckKind.Http, TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(500), 1, 4, TimeSpan.FromMilliseconds(200), "/healthz?deep=1", "web.internal"),
            service.HealthCheck);
        Assert.Equal(new OutlierDetectionOptions(3, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(300), 10), service.OutlierDetection);
    }

    [Fact]
    public void Parse_HealthDefaults_OffUnlessConfigured()
    {
        var config = ConfigLoader.Parse("listeners:\n  - { name: a, listen: '127.0.0.1:7000', service: echo }\n" + Services, "d.yaml");
        var service = config.Services["echo"];

        Assert.Null(service.HealthCheck);
        Assert.Null(service.OutlierDetection);
        Assert.Equal(50, service.Lb.PanicThreshold);
        Assert.Equal([HashKey.SourceIp], service.Lb.HashKeys);

        var withEmpty = ConfigLoader.Parse("listeners:\n  - { name: a, listen: '127.0.0.1:7000', service: echo }\nservices:\n  echo:\n    healthCheck: {}\n    outlierDetection: {}\n    endpoints: [ { address: '127.0.0.1:9000' } ]\n", "e.yaml").Services["echo"];
        Assert.Equal(new HealthCheckOptions(HealthCheckKind.Tcp, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), 2, 3, TimeSpan.Zero), withEmpty.HealthCheck);
        Assert.Equal(OutlierDetectionOptions.Default, withEmpty.OutlierDetection);
    }

    [Fact]
    public void Parse_SeveralErrors_ReportsAllOfThem()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(
            "listeners:\n  - { name: a, listen: bad, service: echo }\n  - { name: b, listen: '127.0.0.1:1', service: none }\n" + Services, "many.yaml"));

        Assert.Equal(2, error.Errors.Count);
        Assert.Contains("many.yaml:2:24: listeners[0].listen", error.Message, StringComparison.Ordinal);
        Assert.Contains("many.yaml:3:48: listeners[1].service", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadFile_Missing_SaysItCannotBeRead()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile("/nonexistent/forwarder.yaml"));

        Assert.StartsWith("/nonexistent/forwarder.yaml:0:0: cannot read the file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NestedDeeperThanTheLimit_IsRefusedWhereTheLimitIsCrossed()
    {
        // The root mapping is level 1, so the 64th bracket opens level 65, at column 8 + 64.
        var yaml = "listeners: []\nnested: " + new string('[', BoundedYamlParser.MaxDepth) + new string(']', BoundedYamlParser.MaxDepth) + "\n";

        AssertSingleError(yaml, "bad.yaml:2:72", $"collections nest deeper than {BoundedYamlParser.MaxDepth} levels here");
    }

    [Fact]
    public void Parse_NestedToTheLimit_IsReadAsUsual()
    {
        var yaml = "listeners: []\nnested: " + new string('[', BoundedYamlParser.MaxDepth - 1) + new string(']', BoundedYamlParser.MaxDepth - 1) + "\n";

        AssertSingleError(yaml, "bad.yaml:2:1", "nested: unknown field");
    }

    [Fact]
    public void LoadFile_LargerThanTheLimit_IsRefusedUnread()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "listeners: []\n" + new string('#', (int)ConfigLoader.MaxFileBytes) + "\n");

            var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(path)).Errors);

            Assert.Equal($"{path}:1:1: the file is {ConfigLoader.MaxFileBytes + 15} bytes; a config file may be at most 4 MiB", error.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Parse_QuickstartExample_IsValid()
    {
        var path = Path.Combine(RepositoryRoot(), "examples", "quickstart.yaml");

        var config = ConfigLoader.LoadFile(path);

        Assert.Equal(["echo", "echo-backend"], config.Listeners.Select(l => l.Name));
    }

    private static void AssertSingleError(string yaml, string location, string message, bool allowMore = false)
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "bad.yaml"));
        var first = allowMore ? error.Errors[0] : Assert.Single(error.Errors);
        Assert.StartsWith(location, first.ToString(), StringComparison.Ordinal);
        Assert.Contains(message, first.ToString(), StringComparison.Ordinal);
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Forwarder.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Forwarder.sln not found above the test binaries.");
    }
}
