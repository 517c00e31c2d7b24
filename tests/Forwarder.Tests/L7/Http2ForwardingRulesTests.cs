using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// The rules requests forwarded through SocketsHttpHandler keep (HTTP/2 clients, and HTTP/1.1
/// clients of HTTP/2 services): what is routed is what is sent, resends only of idempotent
/// requests, the body limit, in-flight counts that always come back.
/// </summary>
public sealed class Http2ForwardingRulesTests
{
    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    internal static HttpClient H2cClient() => new(new SocketsHttpHandler { UseProxy = false })
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(60),
    };

    internal static HttpRequestMessage H2Request(HttpMethod method, Uri uri) => new(method, uri)
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    internal static Uri At(IPEndPoint endPoint, string pathAndQuery) => new($"http://127.0.0.1:{endPoint.Port}{pathAndQuery}", in Verbatim);

    internal static string Http2Service(string name, int port, string extra = "")
        => $"{name}:\n  http: {{ version: \"2\" }}\n{Indent(extra, 2)}\n  endpoints:\n    - address: 127.0.0.1:{port}";

    /// <summary>An HTTP/1.1 upstream that answers GETs on kept-alive connections, and takes every POST and resets the connection without an answer.</summary>
    private static HttpTestBackend ResetsPosts()
        => new(async (request, socket) =>
        {
            if (request.RequestLine.StartsWith("POST ", StringComparison.Ordinal))
            {
                socket.LingerState = new LingerOption(true, 0);
                socket.Close();
                return false;
            }

            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "ok"));
            return true;
        });

    [Fact]
    public async Task BodilessPost_ResetAfterItWasSent_ReachesTheUpstreamsOnce()
    {
        await using var first = ResetsPosts();
        await using var second = ResetsPosts();
        await using var third = ResetsPosts();
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, first, second, third)));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");

        // Leaves kept-alive connections for the POST to reuse.
        for (var i = 0; i < 3; i++)
        {
            using var warm = await client.GetAsync(At(web, "/warm"));
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        using var post = await client.SendAsync(H2Request(HttpMethod.Post, At(web, "/order")));
        Assert.Equal(HttpStatusCode.BadGateway, post.StatusCode);
        Assert.Equal(1, new[] { first, second, third }.Sum(b => b.Requests.Count(r => r.RequestLine.StartsWith("POST ", StringComparison.Ordinal))));
    }

    [Theory]
    [InlineData("/public/../admin", "/admin")]
    [InlineData("/public/%2e%2e/admin", "/admin")]
    [InlineData("/public/./../admin?x=/../y", "/admin?x=/../y")]
    [InlineData("/files/a%20b/caf%C3%A9?q=%E2%9C%93", "/files/a%20b/caf%C3%A9?q=%E2%9C%93")]
    public async Task H2Client_ToHttp11Upstream_SendsThePathItRouted(string path, string routed)
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var other = HttpTestBackend.Text("public");
        await using var forwarder = await RunningForwarder.StartAsync(Config(
            "- { match: { path: { prefix: /public } }, service: other }\n- { match: { path: { prefix: /files } }, service: app }\n- { match: { path: { prefix: /admin } }, service: app }",
            Service("app", string.Empty, backend) + "\n" + Service("other", string.Empty, other)));
        using var client = H2cClient();

        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), path));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"GET {routed} HTTP/1.1", Assert.Single(backend.Requests).RequestLine);
        Assert.Empty(other.Requests);
    }

    [Fact]
    public async Task H2Client_PathNormalizationOff_RoutesAndSendsThePathAsSent()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /public } }, service: app }", Service("app", string.Empty, backend), "pathNormalization: off"));
        using var client = H2cClient();

        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/public/../admin"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("GET /public/../admin HTTP/1.1", Assert.Single(backend.Requests).RequestLine);
    }

    [Theory]
    [InlineData("/public/../admin", "/admin")]
    [InlineData("/public/%2e%2e/admin", "/admin")]
    [InlineData("/public/./../admin", "/admin")]
    [InlineData("/public/a%20b/caf%C3%A9?q=%E2%9C%93", "/public/a%20b/caf%C3%A9?q=%E2%9C%93")]
    public async Task BothClients_ToHttp2Upstream_SendThePathTheyRouted(string path, string routed)
    {
        var seen = new ConcurrentQueue<string>();
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            seen.Enqueue(context.Features.Get<IHttpRequestFeature>()!.RawTarget);
            return context.Response.WriteAsync("ok");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /public } }, service: h2 }\n- { match: { path: { prefix: /admin } }, service: h2 }", Http2Service("h2", backend.Port)));
        var web = forwarder.EndPoint("web");

        using var client = H2cClient();
        using var response = await client.GetAsync(At(web, path));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (status, _, _) = await ExchangeAsync(web, $"GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n");
        Assert.Equal(200, status);
        Assert.Equal([routed, routed], seen.ToArray());
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task AbsoluteFormTarget_ToHttp2Service_IsAnswered_AndInFlightReturnsToZero(string engine)
    {
        var seen = new ConcurrentQueue<string>();
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            seen.Enqueue($"{context.Request.Host} {context.Features.Get<IHttpRequestFeature>()!.RawTarget}");
            return context.Response.WriteAsync("ok");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), http: "http2: " + engine));
        var web = forwarder.EndPoint("web");

        var (status, _, body) = await ExchangeAsync(web, "GET http://app.test/path?x=1 HTTP/1.1\r\nHost: ignored\r\n\r\n");
        Assert.Equal(200, status);
        Assert.Equal("ok", body);
        Assert.Equal("app.test /path?x=1", Assert.Single(seen));

        // A target HTTP/2 cannot carry is the client's fault: 400, and nothing stays in flight.
        (status, _, _) = await ExchangeAsync(web, "OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n");
        Assert.Equal(400, status);
        await Eventually.TrueAsync(() => forwarder.Runtime.Services["h2"].Endpoints[0].State.InFlight == 0, "the endpoint's in-flight count is back to 0");
        Assert.Single(seen);
    }

    [Fact]
    public async Task H2Client_BodyOverMaxBodySize_Declared_Or_Streamed_Gets413()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend), "maxBodySize: 1MiB"));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");
        var twoMiB = new byte[2 * 1024 * 1024];

        using var declared = await client.PostAsync(At(web, "/declared"), new ByteArrayContent(twoMiB));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
        Assert.Empty(backend.Requests);

        // No length: counted as it streams, refused once past the limit.
        using var streamed = await client.PostAsync(At(web, "/streamed"), new StreamContent(new MemoryStream(twoMiB)));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
        Assert.Empty(backend.Requests);

        // Within the limit, both ways pass.
        using var small = await client.PostAsync(At(web, "/small"), new StreamContent(new MemoryStream(new byte[1000])));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal(1000, Assert.Single(backend.Requests).Body.Length);
    }

    [Fact]
    public async Task ClientFaults_NonAsciiHeaderOrStalledBody_DoNotEjectAHealthyEndpoint()
    {
        await using var backend = HttpTestBackend.Text("ok");
        var services = Service("app", "outlierDetection: { consecutiveFailures: 2, baseEjectionTime: 1m, maxEjectionPercent: 100 }", backend);
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: app, timeout: 1s }", services));
        var web = forwarder.EndPoint("web");
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 })
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(60),
        };

        for (var i = 0; i < 6; i++)
        {
            using var request = H2Request(HttpMethod.Get, At(web, "/accented"));
            request.Headers.TryAddWithoutValidation("X-Name", "café");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        var stall = new TaskCompletionSource();
        try
        {
            var stalled = await Task.WhenAll(Enumerable.Range(0, 6).Select(async _ =>
            {
                using var response = await client.PostAsync(At(web, "/upload"), new StalledContent(stall.Task));
                return response.StatusCode;
            }));
            Assert.All(stalled, status => Assert.Equal(HttpStatusCode.RequestTimeout, status));
        }
        finally
        {
            stall.TrySetResult();
        }

        var endpoint = forwarder.Runtime.Services["app"].Endpoints[0];
        Assert.Equal((0, 0L), (endpoint.Health.ConsecutiveFailures, endpoint.Health.Ejections));
        using var healthy = await client.GetAsync(At(web, "/plain"));
        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
    }

    /// <summary>A body that sends a little, then nothing until the test lets it end.</summary>
    private sealed class StalledContent(Task release) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync("partial body"u8.ToArray());
            await stream.FlushAsync();
            await release;
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    /// <summary>Sends one GET with an extra field (argv[2], argv[3]) over raw HTTP/2 (python3-h2, validation off) and prints what came back: status:N, rst:N or goaway:N.</summary>
    private const string RawRequest = """
        c.send_headers(1, [(':method', 'GET'), (':path', '/x'), (':scheme', 'http'), (':authority', 'a'), (sys.argv[2], sys.argv[3])], end_stream=True)
        s.sendall(c.data_to_send())
        while True:
            data = s.recv(65536)
            if not data:
                print('closed'); break
            events = c.receive_data(data)
            done = [e for e in events if isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset, h2.events.ConnectionTerminated))]
            if done:
                e = done[0]
                print('status:' + dict(e.headers)[b':status'].decode() if isinstance(e, h2.events.ResponseReceived) else ('rst:%d' % e.error_code if isinstance(e, h2.events.StreamReset) else 'goaway:%d' % e.error_code))
                break
            # The server may have closed after its GOAWAY: the acknowledgements of its frames have nowhere to go.
            try:
                s.sendall(c.data_to_send())
            except (BrokenPipeError, ConnectionResetError):
                pass
        """;

    [Theory]
    [InlineData("connection", "keep-alive", "goaway:1")]
    [InlineData("te", "gzip", "goaway:1")]
    [InlineData("keep-alive", "timeout=5", "status:400")]
    [InlineData("proxy-connection", "keep-alive", "status:400")]
    [InlineData("transfer-encoding", "chunked", "status:400")]
    [InlineData("upgrade", "websocket", "status:400")]
    [InlineData("te", "trailers", "status:200")]
    public async Task H2Client_ConnectionSpecificField_IsRefused(string name, string value, string expected)
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", string.Empty, backend)));

        var output = await PythonH2Client.OutputAsync(forwarder.EndPoint("web"), RawRequest, [name, value], validating: false);

        // Kestrel itself treats Connection and a TE other than trailers as a connection error; the proxy refuses the rest.
        Assert.Equal(expected, output);
        Assert.Equal(expected == "status:200" ? 1 : 0, backend.Requests.Count);
    }
}
