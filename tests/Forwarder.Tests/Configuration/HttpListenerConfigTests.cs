using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;

namespace Forwarder.Tests.Configuration;

public sealed class HttpListenerConfigTests
{
    private const string Services = """
        services:
          blue:
            endpoints: [ { address: '127.0.0.1:9001' } ]
          green:
            endpoints: [ { address: '127.0.0.1:9002' } ]
        """;

    /// <summary>Lines 1 to 4 of every invalid-listener case; the case's own text starts on line 5.</summary>
    private const string HttpListener = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    protocol: http\n";

    [Fact]
    public void Parse_FullHttpListener_ReadsEveryField()
    {
        var config = ConfigLoader.Parse("""
            listeners:
              - name: web
                listen: 127.0.0.1:8080
                protocol: http
                http:
                  headerTimeout: 5s
                  keepAliveTimeout: 30s
                  maxRequestLine: 4KiB
                  maxHeaderBytes: 16KiB
                  maxHeaders: 50
                  maxBodySize: 10MiB
                  accessLog: /var/log/forwarder/access.jsonl
                  pathNormalization: full
                  bodyTimeout: 20s
                routes:
                  - name: api
                    match:
                      host: api.example.com
                      path: { prefix: /v1 }
                      methods: [GET, POST]
                      headers:
                        - name: X-Canary
                          value: "1"
                        - name: Authorization
                    split:
                      - { service: blue, weight: 90 }
                      - { service: green, weight: 10 }
                    timeout: 3s
                    retries:
                      attempts: 2
                      on: [reset, timeout, 502, 503, 504, 5xx]
                      budgetPercent: 50
                      minConcurrent: 5
                  - match:
                      host: "*.example.com"
                      path: { exact: /healthz }
                    service: blue
                    websocket: false
                  - name: users
                    match:
                      path: { regex: '/users/[0-9]+' }
                    service: green
                  - service: green
            services:
              blue:
                http: { maxIdleConnections: 64, keepAliveTimeout: 10s }
                endpoints: [ { address: '127.0.0.1:9001' } ]
              green:
                endpoints: [ { address: '127.0.0.1:9002' } ]
            """, "http.yaml");

        var listener = Assert.Single(config.Listeners);
        Assert.Equal((ListenerProtocol.Http, (string?)null), (listener.Protocol, listener.Service));
        var http = Assert.IsType<HttpListenerConfig>(listener.Http);
        Assert.Equal(new Http1Limits(MaxRequestLine: 4096, MaxHeadBytes: 16384, MaxHeaders: 50), http.Limits);
        Assert.Equal(TimeSpan.FromSeconds(5), http.HeaderTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), http.KeepAliveTimeout);
        Assert.Equal(10L * 1024 * 1024, http.MaxBodySize);
        Assert.Equal("/var/log/forwarder/access.jsonl", http.AccessLog);
        Assert.Equal((PathNormalization.Full, TimeSpan.FromSeconds(20)), (http.PathNormalization, http.RequestBodyTimeout));
        Assert.Equal([true, false, true, true], http.Routes.Select(r => r.WebSocket));
        Assert.Equal(["api", "route-1", "users", "route-3"], http.Routes.Select(r => r.Name));

        var api = http.Routes[0];
        Assert.Equal("api.example.com", api.Match.Host);
        Assert.Equal(new PathMatch(PathMatchKind.Prefix, "/v1"), api.Match.Path);
        Assert.Equal(["GET", "POST"], api.Match.Methods);
        Assert.Equal([new HeaderMatch("X-Canary", "1"), new HeaderMatch("Authorization", null)], api.Match.Headers);
        Assert.Equal([new RouteBackend("blue", 90), new RouteBackend("green", 10)], api.Backends);
        Assert.Equal(TimeSpan.FromSeconds(3), api.Timeout);
        Assert.Equal(
            new RetryPolicy(2, RetryOn.Reset | RetryOn.Timeout | RetryOn.Status502 | RetryOn.Status503 | RetryOn.Status504 | RetryOn.Status5xx, 50, 5),
            api.Retry);

        var health = http.Routes[1];
        Assert.Equal("*.example.com", health.Match.Host);
        Assert.Equal(new PathMatch(PathMatchKind.Exact, "/healthz"), health.Match.Path);
        Assert.Empty(health.Match.Methods);
        Assert.Empty(health.Match.Headers);
        Assert.Equal([new RouteBackend("blue", 1)], health.Backends);
        Assert.Equal(RouteConfig.DefaultTimeout, health.Timeout);
        Assert.Equal(RetryPolicy.Default, health.Retry);

        var users = http.Routes[2].Match.Path!;
        Assert.Equal((PathMatchKind.Regex, "/users/[0-9]+"), (users.Kind, users.Value));
        Assert.Matches(users.Compiled!, "/users/42");
        Assert.DoesNotMatch(users.Compiled!, "/users/42/orders");

        var fallback = http.Routes[3];
        Assert.Equal((null, null), (fallback.Match.Host, fallback.Match.Path));
        Assert.Equal([new RouteBackend("green", 1)], fallback.Backends);

        Assert.Equal(new UpstreamHttpConfig(64, TimeSpan.FromSeconds(10), System.Net.HttpVersion.Version11), config.Services["blue"].Http);
        Assert.Equal(UpstreamHttpConfig.Default, config.Services["green"].Http);
    }

    [Fact]
    public void Parse_MinimalHttpListener_UsesDefaults()
    {
        var config = ConfigLoader.Parse(HttpListener + "    routes:\n      - service: blue\n" + Services, "min.yaml");

        var listener = Assert.Single(config.Listeners);
        Assert.Equal(ConfigLoader.DefaultMaxConnections, listener.MaxConnections);
        var http = Assert.IsType<HttpListenerConfig>(listener.Http);
        Assert.Equal(Http1Limits.Default, http.Limits);
        Assert.Equal(new Http1Limits(8 * 1024, 32 * 1024, 100), http.Limits);
        Assert.Equal(HttpListenerConfig.DefaultHeaderTimeout, http.HeaderTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), HttpListenerConfig.DefaultHeaderTimeout);
        Assert.Equal(HttpListenerConfig.DefaultKeepAliveTimeout, http.KeepAliveTimeout);
        Assert.Equal(TimeSpan.FromSeconds(75), HttpListenerConfig.DefaultKeepAliveTimeout);
        Assert.Null(http.MaxBodySize);
        Assert.Null(http.AccessLog);

        var route = Assert.Single(http.Routes);
        Assert.Equal("route-0", route.Name);
        Assert.Equal((null, null), (route.Match.Host, route.Match.Path));
        Assert.Empty(route.Match.Methods);
        Assert.Empty(route.Match.Headers);
        Assert.Equal([new RouteBackend("blue", 1)], route.Backends);
        Assert.Equal(RouteConfig.DefaultTimeout, route.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(15), RouteConfig.DefaultTimeout);
        Assert.Equal(RetryPolicy.Default, route.Retry);
        Assert.Equal(new RetryPolicy(Attempts: 1, RetryOn.Reset, BudgetPercent: 20, MinConcurrent: 3), RetryPolicy.Default);

        Assert.Equal(UpstreamHttpConfig.Default, config.Services["blue"].Http);
        Assert.Equal(new UpstreamHttpConfig(1024, TimeSpan.FromSeconds(30), System.Net.HttpVersion.Version11), UpstreamHttpConfig.Default);
    }

    [Fact]
    public void Parse_EmptySections_MeanDefaults()
    {
        var config = ConfigLoader.Parse(
            HttpListener + "    http: {}\n    routes:\n      - { match: {}, service: blue, retries: {} }\n      - split: [ { service: blue }, { service: green, weight: 0 } ]\n"
            + "services:\n  blue:\n    http: {}\n    endpoints: [ { address: '127.0.0.1:9001' } ]\n  green:\n    endpoints: [ { address: '127.0.0.1:9002' } ]\n",
            "empty.yaml");

        var http = config.Listeners[0].Http!;
        Assert.Equal((Http1Limits.Default, HttpListenerConfig.DefaultHeaderTimeout, HttpListenerConfig.DefaultKeepAliveTimeout, (long?)null, (string?)null), (http.Limits, http.HeaderTimeout, http.KeepAliveTimeout, http.MaxBodySize, http.AccessLog));
        Assert.Equal(RetryPolicy.Default, http.Routes[0].Retry);
        Assert.Equal((PathNormalization.DotSegments, HttpListenerConfig.DefaultBodyTimeout, true), (http.PathNormalization, http.RequestBodyTimeout, http.Routes[0].WebSocket));
        Assert.Equal((null, null), (http.Routes[0].Match.Host, http.Routes[0].Match.Path));
        Assert.Equal([new RouteBackend("blue", 1), new RouteBackend("green", 0)], http.Routes[1].Backends);
        Assert.Equal(UpstreamHttpConfig.Default, config.Services["blue"].Http);
    }

    [Fact]
    public void Parse_RouteNames_DefaultToTheirIndex()
    {
        var config = ConfigLoader.Parse(
            HttpListener + "    routes:\n      - service: blue\n      - { name: named, service: green }\n      - service: green\n" + Services, "names.yaml");

        Assert.Equal(["route-0", "named", "route-2"], config.Listeners[0].Http!.Routes.Select(r => r.Name));
    }

    [Fact]
    public void Parse_SameRouteNameOnTwoListeners_IsAllowed()
    {
        var config = ConfigLoader.Parse(
            "listeners:\n"
            + "  - { name: a, listen: '127.0.0.1:8080', protocol: http, routes: [ { name: api, service: blue } ] }\n"
            + "  - { name: b, listen: '127.0.0.1:8081', protocol: http, routes: [ { name: api, service: green } ] }\n"
            + Services,
            "two.yaml");

        Assert.Equal(["api", "api"], config.Listeners.Select(l => l.Http!.Routes[0].Name));
    }

    [Fact]
    public void Parse_PartialRetries_KeepsDefaultsForTheRest()
    {
        var config = ConfigLoader.Parse(
            HttpListener + "    routes:\n      - service: blue\n        retries: { on: [503] }\n      - service: blue\n        retries: { attempts: 0, on: [] }\n" + Services, "retry.yaml");

        var routes = config.Listeners[0].Http!.Routes;
        Assert.Equal(RetryPolicy.Default with { On = RetryOn.Status503 }, routes[0].Retry);
        Assert.True(routes[0].Retry.Retries(503));
        Assert.False(routes[0].Retry.Retries(502));
        Assert.Equal(RetryPolicy.Default with { Attempts = 0, On = RetryOn.None }, routes[1].Retry);
    }

    [Theory]
    [InlineData("api.example.com")]
    [InlineData("*.example.com")]
    [InlineData("localhost")]
    [InlineData("API.Example.COM")]
    [InlineData("xn--bcher-kva.example")]
    [InlineData("10.0.0.1")]
    public void Parse_HostPattern_Valid(string host)
    {
        var config = ConfigLoader.Parse(HttpListener + $"    routes:\n      - match: {{ host: '{host}' }}\n        service: blue\n" + Services, "host.yaml");

        Assert.Equal(host, config.Listeners[0].Http!.Routes[0].Match.Host);
    }

    [Theory]
    [InlineData("api.example.com:80")]
    [InlineData("*")]
    [InlineData("*.")]
    [InlineData("*.*.example.com")]
    [InlineData("api..example.com")]
    [InlineData("api_v1.example.com")]
    [InlineData("api.example.com.")]
    public void Parse_HostPattern_Invalid(string host)
        => AssertSingleError(
            HttpListener + $"    routes:\n      - match: {{ host: '{host}' }}\n        service: blue\n" + Services,
            "bad.yaml:6:24",
            $"listeners[0].routes[0].match.host: expected a host name such as api.example.com or *.example.com, got '{host}'");

    [Theory]
    // Routes as a whole.
    [InlineData("", "bad.yaml:2:5", "listeners[0].routes: is required for an http listener: a list of routes, each with match and service (or split)")]
    [InlineData("    routes: []\n", "bad.yaml:5:13", "listeners[0].routes: needs at least one route")]
    [InlineData("    routes: { service: blue }\n", "bad.yaml:5:13", "listeners[0].routes: expected a list")]
    [InlineData("    routes:\n      - blue\n", "bad.yaml:6:9", "listeners[0].routes[0]: expected a mapping with fields name, match, service, split, timeout, retries")]
    [InlineData("    routes:\n      - service: blue\n        retry: { attempts: 2 }\n", "bad.yaml:7:9", "listeners[0].routes[0].retry: unknown field; expected one of: name, match, service, split, timeout, retries")]
    [InlineData("    routes:\n      - { name: api, service: blue }\n      - { name: api, service: green }\n", "bad.yaml:7:17", "listeners[0].routes[1].name: another route of this listener is already named 'api'")]
    [InlineData("    routes:\n      - { name: route-1, service: blue }\n      - { service: green }\n", "bad.yaml:7:9", "listeners[0].routes[1].name: another route of this listener is already named 'route-1'")]
    [InlineData("    routes:\n      - { name: '', service: blue }\n", "bad.yaml:6:17", "listeners[0].routes[0].name: expected a non-empty string")]
    // Where a route goes.
    [InlineData("    routes:\n      - service: blue\n        split: [ { service: green } ]\n", "bad.yaml:6:9", "listeners[0].routes[0]: expected either service (one service) or split (several, by weight)")]
    [InlineData("    routes:\n      - name: api\n        match: { path: { prefix: /api } }\n", "bad.yaml:6:9", "listeners[0].routes[0]: expected either service (one service) or split (several, by weight)")]
    [InlineData("    routes:\n      - service: nope\n", "bad.yaml:6:18", "listeners[0].routes[0].service: no service named 'nope' (defined: blue, green)")]
    [InlineData("    routes:\n      - split:\n          - { service: blue }\n          - { service: nope, weight: 2 }\n", "bad.yaml:8:24", "listeners[0].routes[0].split[1].service: no service named 'nope' (defined: blue, green)")]
    [InlineData("    routes:\n      - split:\n          - { service: blue, weight: 1 }\n          - { service: blue, weight: 3 }\n", "bad.yaml:8:24", "listeners[0].routes[0].split[1].service: 'blue' is listed twice; give it a higher weight instead")]
    [InlineData("    routes:\n      - split:\n          - { service: blue, weight: 0 }\n          - { service: green, weight: 0 }\n", "bad.yaml:7:11", "listeners[0].routes[0].split: at least one service needs a weight above 0")]
    [InlineData("    routes:\n      - split: []\n", "bad.yaml:6:16", "listeners[0].routes[0].split: needs at least one service")]
    [InlineData("    routes:\n      - split: blue\n", "bad.yaml:6:16", "listeners[0].routes[0].split: expected a list")]
    [InlineData("    routes:\n      - split:\n          - { service: blue, weight: -1 }\n", "bad.yaml:7:38", "listeners[0].routes[0].split[0].weight: expected a whole number from 0 to 1000000, got '-1'")]
    [InlineData("    routes:\n      - split:\n          - { weight: 1 }\n", "bad.yaml:7:13", "listeners[0].routes[0].split[0].service: is required")]
    // Match conditions.
    [InlineData("    routes:\n      - match: { hosts: [a] }\n        service: blue\n", "bad.yaml:6:18", "listeners[0].routes[0].match.hosts: unknown field; expected one of: host, path, methods, headers")]
    [InlineData("    routes:\n      - match: /api\n        service: blue\n", "bad.yaml:6:16", "listeners[0].routes[0].match: expected a mapping with fields host, path, methods, headers")]
    [InlineData("    routes:\n      - match: { path: { exact: /a, prefix: /b } }\n        service: blue\n", "bad.yaml:6:24", "listeners[0].routes[0].match.path: expected exactly one of exact, prefix or regex")]
    [InlineData("    routes:\n      - match: { path: {} }\n        service: blue\n", "bad.yaml:6:24", "listeners[0].routes[0].match.path: expected exactly one of exact, prefix or regex")]
    [InlineData("    routes:\n      - match: { path: /api }\n        service: blue\n", "bad.yaml:6:24", "listeners[0].routes[0].match.path: expected a mapping with fields exact, prefix, regex")]
    [InlineData("    routes:\n      - match: { path: { prefix: api } }\n        service: blue\n", "bad.yaml:6:34", "listeners[0].routes[0].match.path.prefix: a path starts with '/', got 'api'")]
    [InlineData("    routes:\n      - match: { path: { exact: healthz } }\n        service: blue\n", "bad.yaml:6:33", "listeners[0].routes[0].match.path.exact: a path starts with '/', got 'healthz'")]
    [InlineData("    routes:\n      - match: { path: { regex: '(a)\\1' } }\n        service: blue\n", "bad.yaml:6:33", "listeners[0].routes[0].match.path.regex: not a regular expression this proxy can run in linear time")]
    [InlineData("    routes:\n      - match: { path: { regex: '/items/[0-9' } }\n        service: blue\n", "bad.yaml:6:33", "listeners[0].routes[0].match.path.regex: not a regular expression this proxy can run in linear time")]
    [InlineData("    routes:\n      - match: { path: { regex: '/a)|(/b' } }\n        service: blue\n", "bad.yaml:6:33", "listeners[0].routes[0].match.path.regex: not a regular expression this proxy can run in linear time")]
    [InlineData("    routes:\n      - match: { methods: [GET, post] }\n        service: blue\n", "bad.yaml:6:33", "listeners[0].routes[0].match.methods[1]: expected a method in capitals such as GET or POST, got 'post'")]
    [InlineData("    routes:\n      - match: { methods: GET }\n        service: blue\n", "bad.yaml:6:27", "listeners[0].routes[0].match.methods: expected a list")]
    [InlineData("    routes:\n      - match: { headers: [ { name: 'x user' } ] }\n        service: blue\n", "bad.yaml:6:37", "listeners[0].routes[0].match.headers[0].name: 'x user' is not a valid header name")]
    [InlineData("    routes:\n      - match: { headers: [ { value: yes } ] }\n        service: blue\n", "bad.yaml:6:29", "listeners[0].routes[0].match.headers[0].name: is required")]
    [InlineData("    routes:\n      - match: { headers: [ X-Canary ] }\n        service: blue\n", "bad.yaml:6:29", "listeners[0].routes[0].match.headers[0]: expected a mapping with fields name, value")]
    // Timeout and retries.
    [InlineData("    routes:\n      - service: blue\n        timeout: 0\n", "bad.yaml:7:18", "listeners[0].routes[0].timeout: expected a duration such as 500ms, 2s, 5m or 1h (at least 1ms), got '0'")]
    [InlineData("    routes:\n      - service: blue\n        retries: { on: [reset, 500] }\n", "bad.yaml:7:32", "listeners[0].routes[0].retries.on[1]: expected reset, timeout, 502, 503, 504 or 5xx, got '500'")]
    [InlineData("    routes:\n      - service: blue\n        retries: { on: reset }\n", "bad.yaml:7:24", "listeners[0].routes[0].retries.on: expected a list")]
    [InlineData("    routes:\n      - service: blue\n        retries: { attempts: 11 }\n", "bad.yaml:7:30", "listeners[0].routes[0].retries.attempts: expected a whole number from 0 to 10, got '11'")]
    [InlineData("    routes:\n      - service: blue\n        retries: { attempts: -1 }\n", "bad.yaml:7:30", "listeners[0].routes[0].retries.attempts: expected a whole number from 0 to 10, got '-1'")]
    [InlineData("    routes:\n      - service: blue\n        retries: { budgetPercent: 101 }\n", "bad.yaml:7:35", "listeners[0].routes[0].retries.budgetPercent: expected a whole number from 0 to 100, got '101'")]
    [InlineData("    routes:\n      - service: blue\n        retries: { attempt: 2 }\n", "bad.yaml:7:20", "listeners[0].routes[0].retries.attempt: unknown field; expected one of: attempts, on, budgetPercent, minConcurrent")]
    // The listener itself and its http section.
    [InlineData("    service: blue\n    routes: [ { service: blue } ]\n", "bad.yaml:5:14", "listeners[0].service: an http listener picks services by its routes; use routes: [{service: NAME}]")]
    [InlineData("    http: { headerTimeout: soon }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:28", "listeners[0].http.headerTimeout: expected a duration such as 500ms, 2s, 5m or 1h (at least 1ms), got 'soon'")]
    [InlineData("    http: { keepAliveTimeout: 0 }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:31", "listeners[0].http.keepAliveTimeout: expected a duration such as 500ms, 2s, 5m or 1h (at least 1ms), got '0'")]
    [InlineData("    http: { maxBodySize: lots }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:26", "listeners[0].http.maxBodySize: expected a size in bytes such as 1048576, 10MiB or 1GiB, got 'lots'")]
    [InlineData("    http: { maxBodySize: -1 }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:26", "listeners[0].http.maxBodySize: expected a size in bytes such as 1048576, 10MiB or 1GiB, got '-1'")]
    [InlineData("    http: { maxRequestLine: 100 }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:29", "listeners[0].http.maxRequestLine: expected a size in bytes from 256 to 1048576 such as 65536, 64KiB or 1MiB, got '100'")]
    [InlineData("    http: { maxHeaderBytes: 2MiB }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:29", "listeners[0].http.maxHeaderBytes: expected a size in bytes from 1024 to 1048576 such as 65536, 64KiB or 1MiB, got '2MiB'")]
    [InlineData("    http: { maxHeaders: 0 }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:25", "listeners[0].http.maxHeaders: expected a whole number from 1 to 10000, got '0'")]
    [InlineData("    http: { accessLog: '' }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:24", "listeners[0].http.accessLog: expected a non-empty string")]
    [InlineData("    http: { pathNormalization: on }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:32", "listeners[0].http.pathNormalization: expected off, dot-segments or full, got 'on'")]
    [InlineData("    http: { bodyTimeout: 0 }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:26", "listeners[0].http.bodyTimeout: expected a duration such as 500ms, 2s, 5m or 1h (at least 1ms), got '0'")]
    [InlineData("    http: { http2: sideways }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:20", "listeners[0].http.http2: expected auto, native, kestrel or off (true is auto, false is off), got 'sideways'")]
    [InlineData("    http: { http2: native }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:20", "listeners[0].http.http2: native serves HTTP/2 clients only for services with http.version \"2\", and service 'blue' is not one; use auto or kestrel")]
    [InlineData("    routes: [ { service: blue, websocket: maybe } ]\n", "bad.yaml:5:43", "listeners[0].routes[0].websocket: expected true or false, got 'maybe'")]
    [InlineData("    http: { timeout: 1s }\n    routes: [ { service: blue } ]\n", "bad.yaml:5:13", "listeners[0].http.timeout: unknown field; expected one of: headerTimeout, keepAliveTimeout, maxRequestLine, maxHeaderBytes, maxHeaders, maxBodySize, accessLog")]
    [InlineData("    http: [ headerTimeout ]\n    routes: [ { service: blue } ]\n", "bad.yaml:5:11", "listeners[0].http: expected a mapping with fields headerTimeout, keepAliveTimeout")]
    public void Parse_InvalidHttpListener_NamesFileLineAndField(string body, string location, string message)
        => AssertSingleError(HttpListener + body + Services, location, message);

    // auto resolves once, at load: the native engine only where every service speaks HTTP/2 upstream
    // and no route asks for WebSockets itself, read as the route reader reads the flag.
    [Theory]
    [InlineData("", "Native")]
    [InlineData(", websocket: false", "Native")]
    [InlineData(", websocket: true", "Kestrel")]
    [InlineData(", websocket: True", "Kestrel")]
    [InlineData(", websocket: TRUE", "Kestrel")]
    public void Parse_Http2Auto_PicksTheEngineFromServicesAndWebSocketRoutes(string webSocket, string expected)
    {
        var config = ConfigLoader.Parse($$"""
            listeners:
              - name: web
                listen: 127.0.0.1:8080
                protocol: http
                routes: [ { service: grpc{{webSocket}} } ]
              - name: mixed
                listen: 127.0.0.1:8081
                protocol: http
                routes: [ { service: grpc }, { service: blue } ]
            services:
              grpc:
                http: { version: "2" }
                endpoints: [ { address: '127.0.0.1:9001' } ]
              blue:
                endpoints: [ { address: '127.0.0.1:9002' } ]
            """, "auto.yaml");

        Assert.Equal(Enum.Parse<Http2Engine>(expected), Assert.IsType<HttpListenerConfig>(config.Listeners[0].Http).Http2Engine);
        Assert.Equal(Http2Engine.Kestrel, Assert.IsType<HttpListenerConfig>(config.Listeners[1].Http).Http2Engine);
    }

    [Theory]
    [InlineData("listeners:\n  - name: tcp\n    listen: 127.0.0.1:7000\n    service: blue\n    routes: [ { service: blue } ]\n", "bad.yaml:5:13", "listeners[0].routes: applies to http listeners only")]
    [InlineData("listeners:\n  - name: tcp\n    listen: 127.0.0.1:7000\n    protocol: tcp\n    service: blue\n    http: { maxHeaders: 10 }\n", "bad.yaml:6:11", "listeners[0].http: applies to http listeners only")]
    [InlineData("listeners:\n  - name: echo\n    listen: 127.0.0.1:7000\n    protocol: echo\n    routes: [ { service: blue } ]\n", "bad.yaml:5:13", "listeners[0].routes: applies to http listeners only")]
    public void Parse_HttpFieldsOnOtherListeners_AreRejected(string listeners, string location, string message)
        => AssertSingleError(listeners + Services, location, message);

    [Theory]
    [InlineData("    http: { maxIdleConnections: -1 }\n", "bad.yaml:5:33", "services.blue.http.maxIdleConnections: expected a whole number from 0 to 1000000, got '-1'")]
    [InlineData("    http: { keepAliveTimeout: 0 }\n", "bad.yaml:5:31", "services.blue.http.keepAliveTimeout: expected a duration such as 500ms, 2s, 5m or 1h (at least 1ms), got '0'")]
    [InlineData("    http: { maxIdle: 5 }\n", "bad.yaml:5:13", "services.blue.http.maxIdle: unknown field; expected one of: maxIdleConnections, keepAliveTimeout")]
    [InlineData("    http: 64\n", "bad.yaml:5:11", "services.blue.http: expected a mapping with fields maxIdleConnections, keepAliveTimeout")]
    public void Parse_InvalidUpstreamHttp_NamesFileLineAndField(string serviceHttp, string location, string message)
        => AssertSingleError(
            "listeners:\n  - { name: web, listen: '127.0.0.1:8080', protocol: http, routes: [ { service: blue } ] }\nservices:\n  blue:\n"
            + serviceHttp + "    endpoints: [ { address: '127.0.0.1:9001' } ]\n",
            location,
            message);

    [Fact]
    public void Parse_UpstreamHttp_ZeroIdleConnectionsIsAllowed()
    {
        var config = ConfigLoader.Parse(
            "listeners:\n  - { name: web, listen: '127.0.0.1:8080', protocol: http, routes: [ { service: blue } ] }\nservices:\n  blue:\n"
            + "    http: { maxIdleConnections: 0 }\n    endpoints: [ { address: '127.0.0.1:9001' } ]\n",
            "pool.yaml");

        Assert.Equal(UpstreamHttpConfig.Default with { MaxIdleConnections = 0 }, config.Services["blue"].Http);
    }

    [Fact]
    public void Parse_RouteToServiceWithNoServicesDefined_SaysNoneAreDefined()
        => AssertSingleError(
            HttpListener + "    routes:\n      - service: blue\n",
            "bad.yaml:6:18",
            "listeners[0].routes[0].service: no service named 'blue' (none are defined)");

    [Fact]
    public void Parse_SeveralRouteErrors_ReportsAllOfThem()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(
            HttpListener + "    http: { maxHeaders: many }\n    routes:\n      - service: nope\n      - match: { host: 'a b', methods: [get] }\n        service: blue\n" + Services,
            "many.yaml"));

        Assert.Equal(
            [
                "many.yaml:5:25: listeners[0].http.maxHeaders: expected a whole number from 1 to 10000, got 'many'",
                "many.yaml:7:18: listeners[0].routes[0].service: no service named 'nope' (defined: blue, green)",
                "many.yaml:8:24: listeners[0].routes[1].match.host: expected a host name such as api.example.com or *.example.com, got 'a b'",
                "many.yaml:8:41: listeners[0].routes[1].match.methods[0]: expected a method in capitals such as GET or POST, got 'get'",
            ],
            error.Errors.Select(e => e.ToString()));
    }

    private static void AssertSingleError(string yaml, string location, string message)
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "bad.yaml"));
        var only = Assert.Single(error.Errors);
        Assert.StartsWith(location + ": ", only.ToString(), StringComparison.Ordinal);
        Assert.Contains(message, only.ToString(), StringComparison.Ordinal);
    }
}
