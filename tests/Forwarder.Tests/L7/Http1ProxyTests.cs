using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.L7;

/// <summary>Runs every Http1ProxyTests test on the epoll engine.</summary>
public sealed class EpollEngineHttp1ProxyTests : Http1ProxyTests
{
    protected override string Engine => "epoll";
}

/// <summary>Runs every Http1ProxyTests test on the pipes engine.</summary>
public sealed class PipesEngineHttp1ProxyTests : Http1ProxyTests
{
    protected override string Engine => "pipes";
}

/// <summary>An http listener end to end: real sockets in front, real HTTP servers behind; on each engine.</summary>
public abstract class Http1ProxyTests
{
    /// <summary>The engine (tcp.engine) the test classes deriving from this one run on.</summary>
    protected abstract string Engine { get; }

    /// <param name="engine">tcp.engine for the whole forwarder (epoll or pipes); its default when empty.</param>
    internal static string Config(string routes, string services, string http = "", string engine = "") => $"""
        {(engine.Length == 0 ? string.Empty : $"tcp: {{ engine: {engine} }}")}
        listeners:
          - name: web
            listen: '127.0.0.1:0'
            protocol: http
        {Indent(http.Length == 0 ? string.Empty : "http:\n" + Indent(http, 2), 4)}
            routes:
        {Indent(routes, 6)}
        services:
        {Indent(services, 2)}
        """;

    /// <summary><see cref="Config"/> on this class's engine.</summary>
    protected string OnEngine(string routes, string services, string http = "") => Config(routes, services, http, Engine);

    internal static string Service(string name, string extra, params HttpTestBackend[] backends)
        => $"{name}:\n{Indent(extra, 2)}\n  endpoints:\n{string.Join("\n", backends.Select(b => $"    - address: {b.Address}"))}";

    internal static string Indent(string text, int spaces)
        => string.Join("\n", text.Split('\n').Select(line => line.Length == 0 ? line : new string(' ', spaces) + line));

    internal static async Task<(int Status, string Head, string Body)> ReadResponseAsync(SocketReader reader)
    {
        var head = await reader.ReadHeadAsync() ?? throw new EndOfStreamException("The connection closed before a response head.");
        var body = await reader.ReadBodyAsync(head) ?? throw new EndOfStreamException("The connection closed inside the response body.");
        return (int.Parse(head.AsSpan(9, 3), provider: System.Globalization.CultureInfo.InvariantCulture), head, Encoding.UTF8.GetString(body));
    }

    internal static async Task<(int Status, string Head, string Body)> ExchangeAsync(System.Net.IPEndPoint endPoint, string request)
    {
        using var socket = await SocketClient.ConnectAsync(endPoint);
        await HttpTestBackend.SendAsync(socket, request);
        return await ReadResponseAsync(new SocketReader(socket));
    }

    [Fact]
    public async Task Get_ReachesTheRoutedBackend_WithForwardingHeaders_AndWithoutHopByHopOnes()
    {
        await using var backend = HttpTestBackend.Text("hello", "Keep-Alive: timeout=5\r\nConnection: keep-alive, X-Secret\r\nX-Secret: internal\r\nX-Kept: yes\r\n");
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine("- service: hello", Service("hello", string.Empty, backend)));

        var (status, head, body) = await ExchangeAsync(forwarder.EndPoint("web"),
            "GET /a/b?c=d HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Forwarded-For: 10.0.0.1\r\nX-Keep: 2\r\n\r\n");

        Assert.Equal(200, status);
        Assert.Equal("hello", body);
        Assert.Equal("yes", SocketReader.HeaderOf(head, "x-kept"));
        Assert.Null(SocketReader.HeaderOf(head, "x-secret"));
        Assert.Null(SocketReader.HeaderOf(head, "keep-alive"));
        Assert.Equal("1.1 forwarder", SocketReader.HeaderOf(head, "via"));

        var seen = Assert.Single(backend.Requests);
        Assert.Equal("GET /a/b?c=d HTTP/1.1", seen.RequestLine);
        Assert.Equal("example.test", seen.Header("host"));
        Assert.Equal("2", seen.Header("x-keep"));
        Assert.Null(seen.Header("x-drop"));
        Assert.Null(seen.Header("te"));
        Assert.Null(seen.Header("proxy-connection"));
        Assert.Equal("10.0.0.1, 127.0.0.1", seen.Header("x-forwarded-for"));
        Assert.Equal("http", seen.Header("x-forwarded-proto"));
        Assert.Equal("example.test", seen.Header("x-forwarded-host"));
        Assert.Equal("1.1 forwarder", seen.Header("via"));
        Assert.False(string.IsNullOrEmpty(seen.Header("x-request-id")));
    }

    [Fact]
    public async Task KeepAlive_OnBothSides_ManyRequestsShareOneUpstreamConnection()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine("- service: hello", Service("hello", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        for (var i = 0; i < 5; i++)
        {
            await HttpTestBackend.SendAsync(socket, $"GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n");
            var (status, _, body) = await ReadResponseAsync(reader);
            Assert.Equal((200, "ok"), (status, body));
        }

        // Pipelined: two requests in one write, answered in order.
        await HttpTestBackend.SendAsync(socket, "GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(200, (await ReadResponseAsync(reader)).Status);
        Assert.Equal(200, (await ReadResponseAsync(reader)).Status);

        // A second client reuses the pooled connection too.
        Assert.Equal(200, (await ExchangeAsync(forwarder.EndPoint("web"), "GET /other HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal(8, backend.Requests.Count);
        Assert.Equal(1, backend.AcceptedCount);
        Assert.Equal(["/0", "/1", "/2", "/3", "/4", "/p1", "/p2", "/other"], backend.Requests.Select(r => r.RequestLine.Split(' ')[1]));
    }

    [Fact]
    public async Task Bodies_StreamBothWays_ByLengthAndChunked()
    {
        var large = new string('x', 3 << 20);
        await using var backend = new HttpTestBackend(async (request, socket) =>
        {
            // Answers with the request body's length, then a large chunked body.
            var chunk = Encoding.ASCII.GetBytes(large);
            await HttpTestBackend.SendAsync(socket, $"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Received: {request.Body.Length}\r\n\r\n{chunk.Length:x}\r\n");
            await socket.SendAsync(chunk, SocketFlags.None);
            await HttpTestBackend.SendAsync(socket, "\r\n0\r\nX-Trailer: t\r\n\r\n");
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine("- service: big", Service("big", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        var body = new byte[5 << 20];
        Random.Shared.NextBytes(body);
        await HttpTestBackend.SendAsync(socket, $"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {body.Length}\r\n\r\n");
        await socket.SendAsync(body, SocketFlags.None);
        var (status, head, response) = await ReadResponseAsync(reader);
        Assert.Equal(200, status);
        Assert.Equal(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), SocketReader.HeaderOf(head, "x-received"));
        Assert.Equal(large.Length, response.Length);
        Assert.Equal(body, backend.Requests[0].Body);

        await HttpTestBackend.SendAsync(socket, "POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
        (status, head, _) = await ReadResponseAsync(reader);
        Assert.Equal(200, status);
        Assert.Equal("11", SocketReader.HeaderOf(head, "x-received"));
        Assert.Equal("hello world", Encoding.ASCII.GetString(backend.Requests[1].Body));
    }

    [Fact]
    public async Task Routing_ByHostPathMethodAndHeader_AndUnroutedRequestsReachNoUpstream()
    {
        await using var api = HttpTestBackend.Text("api");
        await using var canary = HttpTestBackend.Text("canary");
        await using var files = HttpTestBackend.Text("files");
        var routes = """
            - name: canary
              match: { host: api.example.com, headers: [ { name: x-canary, value: "on" } ] }
              service: canary
            - name: api
              match: { host: api.example.com, path: { prefix: /v1 }, methods: [GET, POST] }
              service: api
            - name: files
              match: { host: "*.cdn.example.com", path: { regex: "/[a-z]+\\.png" } }
              service: files
            """;
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine(routes, string.Join("\n", Service("api", string.Empty, api), Service("canary", string.Empty, canary), Service("files", string.Empty, files))));
        var web = forwarder.EndPoint("web");

        Assert.Equal("api", (await ExchangeAsync(web, "GET /v1/users HTTP/1.1\r\nHost: API.example.com:80\r\n\r\n")).Body);
        Assert.Equal("canary", (await ExchangeAsync(web, "GET /v1/users HTTP/1.1\r\nHost: api.example.com\r\nX-Canary: on\r\n\r\n")).Body);
        Assert.Equal("files", (await ExchangeAsync(web, "GET /logo.png HTTP/1.1\r\nHost: eu.cdn.example.com\r\n\r\n")).Body);

        // Not routed: wrong method, a path outside the prefix, another host, and the open-proxy shape.
        foreach (var request in new[]
        {
            "DELETE /v1/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            "GET /v10 HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            "GET /logo.png HTTP/1.1\r\nHost: cdn.example.com\r\n\r\n",
            "GET http://evil.example.org/v1/users HTTP/1.1\r\nHost: evil.example.org\r\n\r\n",
        })
        {
            var (status, head, _) = await ExchangeAsync(web, request);
            Assert.Equal(404, status);
            Assert.Equal("close", SocketReader.HeaderOf(head, "connection"));
        }

        Assert.Single(api.Requests);
        Assert.Single(canary.Requests);
        Assert.Single(files.Requests);
    }

    [Theory]
    [InlineData("/public/../admin")]
    [InlineData("/public/%2e%2e/admin")]
    [InlineData("/public/./../admin")]
    [InlineData("/public/%2E./admin?x=/../y")]
    public async Task DotSegments_AreResolvedBeforeRouting_AndTheRoutedPathIsTheOneSent(string target)
    {
        await using var publicSite = HttpTestBackend.Text("public");
        await using var admin = HttpTestBackend.Text("admin");
        var routes = "- { match: { path: { prefix: /public } }, service: public }\n- { match: { path: { prefix: /admin } }, service: admin }";
        var services = Service("public", string.Empty, publicSite) + "\n" + Service("admin", string.Empty, admin);

        await using (var forwarder = await RunningForwarder.StartAsync(OnEngine(routes, services)))
        {
            Assert.Equal("admin", (await ExchangeAsync(forwarder.EndPoint("web"), $"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n")).Body);
            var query = target.Contains('?', StringComparison.Ordinal) ? target[target.IndexOf('?', StringComparison.Ordinal)..] : string.Empty;
            Assert.Equal($"GET /admin{query} HTTP/1.1", Assert.Single(admin.Requests).RequestLine);
        }

        // With normalization off, the path is routed and sent exactly as it came.
        await using (var forwarder = await RunningForwarder.StartAsync(OnEngine(routes, services, "pathNormalization: off")))
        {
            Assert.Equal("public", (await ExchangeAsync(forwarder.EndPoint("web"), $"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n")).Body);
            Assert.Equal($"GET {target} HTTP/1.1", Assert.Single(publicSite.Requests).RequestLine);
        }
    }

    [Fact]
    public async Task FullPathNormalization_MergesSlashesToo()
    {
        await using var admin = HttpTestBackend.Text("admin");
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine(
            "- { match: { path: { exact: /admin/users } }, service: admin }", Service("admin", string.Empty, admin), "pathNormalization: full"));
        Assert.Equal(200, (await ExchangeAsync(forwarder.EndPoint("web"), "GET //admin//x/..//users HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal("GET /admin/users HTTP/1.1", Assert.Single(admin.Requests).RequestLine);
    }

    [Fact]
    public async Task RepeatedForwardedFor_IsMergedInOrder_ThenTheClientAppended()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine("- service: app", Service("app", string.Empty, backend)));
        await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nVia: 1.1 a\r\nVia: 1.1 b\r\n\r\n");
        var seen = Assert.Single(backend.Requests);
        Assert.Equal("10.0.0.1, 10.0.0.2, 127.0.0.1", seen.Header("x-forwarded-for"));
        Assert.Equal("1.1 a, 1.1 b, 1.1 forwarder", seen.Header("via"));
    }

    [Fact]
    public async Task UnderscoredFramingFields_AreDropped_TheBodyIsFramedByContentLengthAlone()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine("- service: app", Service("app", string.Empty, backend)));
        var (status, _, _) = await ExchangeAsync(forwarder.EndPoint("web"), "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent_Length: 0\r\nContent-Length: 5\r\n\r\nhello");
        Assert.Equal(200, status);
        var seen = Assert.Single(backend.Requests);
        Assert.Null(seen.Header("transfer_encoding"));
        Assert.Null(seen.Header("content_length"));
        Assert.Equal("hello", Encoding.ASCII.GetString(seen.Body));
    }

    [Fact]
    public async Task WeightedSplit_SendsEachServiceItsShare()
    {
        await using var stable = HttpTestBackend.Text("stable");
        await using var next = HttpTestBackend.Text("next");
        var routes = """
            - split:
                - { service: stable, weight: 3 }
                - { service: next, weight: 1 }
            """;
        await using var forwarder = await RunningForwarder.StartAsync(OnEngine(routes, Service("stable", string.Empty, stable) + "\n" + Service("next", string.Empty, next)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);
        var counts = new Dictionary<string, int> { ["stable"] = 0, ["next"] = 0 };
        for (var i = 0; i < 400; i++)
        {
            await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            counts[(await ReadResponseAsync(reader)).Body]++;
        }

        // 100 expected for next; 60..140 is beyond five standard deviations either way.
        Assert.InRange(counts["next"], 60, 140);
    }
}
