using System.Net;
using Forwarder.Tests.Infrastructure;
using Forwarder.Tests.L7.Http2.Client;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// The native HTTP/2 front: which engine <c>http.http2</c> picks, and resets crossing the proxy
/// both ways (a client's RST_STREAM reaches the upstream, an upstream's reaches the client).
/// The engine shows in the response's Via: the native one says "2 forwarder", Kestrel's path
/// the upstream response's version ("2.0 forwarder", "1.1 forwarder").
/// </summary>
public sealed class Http2NativeFrontTests
{
    [Theory]
    [InlineData("", "2 forwarder")]
    [InlineData("http2: auto", "2 forwarder")]
    [InlineData("http2: true", "2 forwarder")]
    [InlineData("http2: native", "2 forwarder")]
    [InlineData("http2: kestrel", "2.0 forwarder")]
    public async Task Engine_ForHttp2Services_IsNativeUnlessKestrelIsAsked(string http, string via)
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("ok"));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), http));
        using var client = H2cClient();
        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/x"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", await response.Content.ReadAsStringAsync());
        Assert.Equal(via, string.Join(",", response.Headers.GetValues("via")));
    }

    [Fact]
    public async Task Auto_WithAnHttp11ServiceOrAWebSocketRoute_StaysOnKestrel()
    {
        await using var h2 = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("h2"));
        await using var h1 = HttpTestBackend.Text("h1");
        var services = Http2Service("h2", h2.Port) + "\n" + Service("app", string.Empty, h1);
        await using var mixed = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /h2 } }, service: h2 }\n- service: app", services));
        await using var webSockets = await RunningForwarder.StartAsync(Config("- { service: h2, websocket: true }", Http2Service("h2", h2.Port)));
        using var client = H2cClient();

        using var viaMixed = await client.GetAsync(At(mixed.EndPoint("web"), "/h2/x"));
        Assert.Equal("h2", await viaMixed.Content.ReadAsStringAsync());
        Assert.Equal("2.0 forwarder", string.Join(",", viaMixed.Headers.GetValues("via")));

        using var viaWebSockets = await client.GetAsync(At(webSockets.EndPoint("web"), "/x"));
        Assert.Equal("h2", await viaWebSockets.Content.ReadAsStringAsync());
        Assert.Equal("2.0 forwarder", string.Join(",", viaWebSockets.Headers.GetValues("via")));
    }

    [Fact]
    public async Task Auto_AfterAReloadToAnHttp11Service_ANativeConnectionRefusesTheStreamAndGoesAway_TheClientRetriesOnKestrel()
    {
        await using var h2 = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("h2"));
        await using var h1 = HttpTestBackend.Text("h1");
        var services = Http2Service("h2", h2.Port) + "\n" + Service("app", string.Empty, h1);
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", services));
        var web = forwarder.EndPoint("web");
        using var client = H2cClient();
        using (var before = await client.GetAsync(At(web, "/x")))
        {
            Assert.Equal("h2", await before.Content.ReadAsStringAsync());
            Assert.Equal("2 forwarder", string.Join(",", before.Headers.GetValues("via")));
        }

        Assert.True(await forwarder.ReloadAsync(Config("- service: app", services)));

        // The kept connection is native still: it may not dial h2c to an HTTP/1.1 service. It
        // refuses the stream (REFUSED_STREAM) and goes away: the client sends the request again
        // on a new connection, on Kestrel now.
        using var after = await client.GetAsync(At(web, "/x"));
        Assert.Equal("h1", await after.Content.ReadAsStringAsync());
        Assert.Equal("1.1 forwarder", string.Join(",", after.Headers.GetValues("via")));
    }

    [Fact]
    public async Task Native_ForwardsTheRoutedRequest_WithForwardingHeaders()
    {
        var seen = new TaskCompletionSource<IHeaderDictionary>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            seen.TrySetResult(new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase)) { ["x-path"] = context.Request.Path + context.Request.QueryString });
            return context.Response.WriteAsync("ok");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /api } }, service: h2 }", Http2Service("h2", backend.Port), "http2: native"));
        var web = forwarder.EndPoint("web");
        using var client = H2cClient();
        using var request = H2Request(HttpMethod.Get, At(web, "/api/../api/items?x=1"));
        request.Headers.Add("x-forwarded-for", "10.1.2.3");
        request.Headers.Add("via", "1.1 edge");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var headers = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("/api/items?x=1", headers["x-path"].ToString());
        Assert.Equal("10.1.2.3, 127.0.0.1", headers["x-forwarded-for"].ToString());
        Assert.Equal("http", headers["x-forwarded-proto"].ToString());
        Assert.Equal($"127.0.0.1:{web.Port}", headers["x-forwarded-host"].ToString());
        Assert.Equal("1.1 edge, 2 forwarder", headers["via"].ToString());
        Assert.StartsWith("h2-", headers["x-request-id"].ToString(), StringComparison.Ordinal);

        using var missing = await client.GetAsync(At(web, "/other"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task StatusNamedInRetriesOn_IsRetriedOnTheOtherHttp2Endpoint_AndCounted(string engine)
    {
        await using var failing = await KestrelTestBackend.StartHttp2Async(context =>
        {
            context.Response.StatusCode = 503;
            return context.Response.WriteAsync("busy");
        });
        await using var serving = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("fine"));
        var services = $"app:\n  http: {{ version: \"2\" }}\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - {{ address: '127.0.0.1:{failing.Port}', weight: 100 }}\n    - {{ address: '127.0.0.1:{serving.Port}', weight: 1 }}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { name: api, service: app, retries: { attempts: 1, on: [503] } }", services, "http2: " + engine));
        using var client = H2cClient();

        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/x"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("fine", await response.Content.ReadAsStringAsync());

        // A POST is not idempotent: the 503 goes back as it came.
        using var post = await client.PostAsync(At(forwarder.EndPoint("web"), "/x"), new StringContent("order"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, post.StatusCode);
        await Eventually.TrueAsync(() => forwarder.Runtime.Services["app"].Endpoints.All(e => e.State.InFlight == 0), "every in-flight count is back to 0");
    }

    [Fact]
    public async Task Native_RouteTimeout_Is504ForTheSlowStreamOnly_AndTheConnectionServesOnAfterIt()
    {
        var never = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            if (context.Request.Path == "/slow")
            {
                await never.Task.WaitAsync(context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
            }

            await context.Response.WriteAsync("fast");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: h2, timeout: 2s }", Http2Service("h2", backend.Port), "http2: native"));
        var web = forwarder.EndPoint("web");
        using var client = H2cClient();
        try
        {
            var slow = client.GetAsync(At(web, "/slow"));
            using var fast = await client.GetAsync(At(web, "/fast"));
            using var timedOut = await slow.WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(HttpStatusCode.OK, fast.StatusCode);
            Assert.Equal(HttpStatusCode.GatewayTimeout, timedOut.StatusCode);

            // The connection's exchanges, the expired one among them, serve the next requests with a deadline of their own.
            var after = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.GetStringAsync(At(web, "/fast"))));
            Assert.All(after, text => Assert.Equal("fast", text));
        }
        finally
        {
            never.TrySetResult();
        }
    }

    [Fact]
    public async Task Native_AccessLog_RecordsTheForwardedRequest()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null);
            await context.Response.WriteAsync("twelve bytes");
        });
        var log = Path.Combine(Path.GetTempPath(), $"forwarder-h2-access-{Guid.NewGuid():N}.log");
        try
        {
            await using (var forwarder = await RunningForwarder.StartAsync(Config("- { name: main, service: h2 }", Http2Service("h2", backend.Port), $"http2: native\naccessLog: {log}")))
            {
                using var client = H2cClient();
                using var request = H2Request(HttpMethod.Post, At(forwarder.EndPoint("web"), "/a/../b?c=1"));
                request.Content = new ByteArrayContent(new byte[100]);
                request.Headers.Add("x-request-id", "given-7");
                using var response = await client.SendAsync(request);
                Assert.Equal("twelve bytes", await response.Content.ReadAsStringAsync());
                await Eventually.TrueAsync(() => File.Exists(log) && File.ReadAllLines(log).Length == 1, "the request logged");
            }

            var entry = System.Text.Json.JsonDocument.Parse(File.ReadAllLines(log)[0]).RootElement;
            Assert.Equal("main", entry.GetProperty("route").GetString());
            Assert.Equal("h2", entry.GetProperty("service").GetString());
            Assert.Equal("POST", entry.GetProperty("method").GetString());
            Assert.Equal("/b?c=1", entry.GetProperty("target").GetString());
            Assert.Equal(200, entry.GetProperty("status").GetInt32());
            Assert.Equal(100, entry.GetProperty("bytesReceived").GetInt64());
            Assert.Equal(12, entry.GetProperty("bytesSent").GetInt64());
            Assert.Equal("given-7", entry.GetProperty("requestId").GetString());
        }
        finally
        {
            File.Delete(log);
        }
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task ClientReset_ReachesTheUpstreamAsAReset(string engine)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            context.RequestAborted.Register(() => aborted.TrySetResult());
            await context.Response.StartAsync();
            await context.Response.Body.FlushAsync();
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: " + engine));
        using var client = H2cClient();
        using var cancel = new CancellationTokenSource();
        using var response = await client.SendAsync(H2Request(HttpMethod.Get, At(forwarder.EndPoint("web"), "/held")), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var body = await response.Content.ReadAsStreamAsync();

        // Cancelling the read resets the client's stream (RST_STREAM CANCEL): the upstream's must follow.
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<Exception>(() => body.ReadAsync(new byte[16], cancel.Token).AsTask());
        response.Dispose();
        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Native_ClientCancel_ReachesAPython3H2Upstream_AsRstStreamCancel_AndItsResetReachesTheClient()
    {
        await using var peer = await Http2PeerServer.StartH2Async("plain");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", peer.Port), "http2: native"));
        var web = forwarder.EndPoint("web");
        using var client = H2cClient();

        // The upstream never answers /hang: the client gives up, the proxy must reset the upstream stream.
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetAsync(At(web, "/hang"), cancel.Token));
        }

        await Eventually.TrueAsync(
            async () =>
            {
                using var resets = await client.GetAsync(At(web, "/resets"));
                return (await resets.Content.ReadAsStringAsync()).Split(',').Contains("8");
            },
            "the upstream received RST_STREAM CANCEL (8)");

        // The upstream resets a stream before any response (REFUSED_STREAM would be retried; PROTOCOL_ERROR is not): the client's request fails as a 502.
        using var reset = await client.GetAsync(At(web, "/rst/1"));
        Assert.Equal(HttpStatusCode.BadGateway, reset.StatusCode);
    }

    [Fact]
    public async Task Native_RefusedStream_GoesAgainToTheSameEndpoint_AndAStreamAboveAGoAway_ToAFreshConnection()
    {
        await using var peer = await Http2PeerServer.StartH2Async("goaway");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", $"app:\n  http: {{ version: \"2\" }}\n  outlierDetection: {{ consecutiveFailures: 1 }}\n  endpoints:\n    - address: 127.0.0.1:{peer.Port}", "http2: native"));
        var web = forwarder.EndPoint("web");
        using var client = H2cClient();

        // The one endpoint refuses the first two (REFUSED_STREAM): sent a third time, it answers.
        using var refused = await client.SendAsync(H2Request(HttpMethod.Post, At(web, "/refuse-twice")));
        Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
        Assert.Equal("third", await refused.Content.ReadAsStringAsync());

        // Two streams on one connection, then GOAWAY with the first as the last stream: the second goes on a new connection.
        var bodies = await Task.WhenAll(client.GetStringAsync(At(web, "/goaway")), client.GetStringAsync(At(web, "/goaway")));
        Assert.Equal(["first", "fresh"], bodies.Order());

        var endpoint = forwarder.Runtime.Services["app"].Endpoints[0];
        Assert.Equal((0, 0L), (endpoint.Health.ConsecutiveFailures, endpoint.Health.Ejections));
        Assert.Equal(0, forwarder.Metrics.Service("app").Http.Retries);
    }

    [Fact]
    public async Task Native_RefusedStream_AfterTwoResends_GoesToTheNextEndpoint_EvenForAPost_WithoutCountingAgainstHealth()
    {
        // The python3-h2 peer always refuses /rst/7 with REFUSED_STREAM (7): unprocessed, so safe to send elsewhere.
        await using var peer = await Http2PeerServer.StartH2Async("plain");
        await using var serving = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("served"));
        var services = $"app:\n  http: {{ version: \"2\" }}\n  outlierDetection: {{ consecutiveFailures: 100 }}\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - {{ address: '127.0.0.1:{peer.Port}', weight: 100 }}\n    - {{ address: '127.0.0.1:{serving.Port}', weight: 1 }}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", services, "http2: native"));
        using var client = H2cClient();

        using var get = await client.GetAsync(At(forwarder.EndPoint("web"), "/rst/7"));
        Assert.Equal("served", await get.Content.ReadAsStringAsync());
        using var post = await client.SendAsync(H2Request(HttpMethod.Post, At(forwarder.EndPoint("web"), "/rst/7")));
        Assert.Equal("served", await post.Content.ReadAsStringAsync());
        Assert.All(forwarder.Runtime.Services["app"].Endpoints, e => Assert.Equal(0, e.Health.ConsecutiveFailures));
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task UpstreamReset_MidResponse_ResetsTheClientStream(string engine)
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            await context.Response.WriteAsync("partial");
            await context.Response.Body.FlushAsync();
            context.Abort();
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: " + engine));
        using var client = H2cClient();
        using var response = await client.SendAsync(H2Request(HttpMethod.Get, At(forwarder.EndPoint("web"), "/cut")), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStreamAsync();
        await Assert.ThrowsAnyAsync<IOException>(async () =>
        {
            var buffer = new byte[1024];
            while (await body.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30)) > 0)
            {
            }
        });

        // The connection is fine: the next request on it is answered.
        using var next = await client.GetAsync(At(forwarder.EndPoint("web"), "/cut"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task StreamedBodyOverMaxBodySize_ToAnHttp2Service_Gets413(string engine)
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null);
            await context.Response.WriteAsync("read");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "maxBodySize: 1MiB\nhttp2: " + engine));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");

        using var declared = await client.PostAsync(At(web, "/declared"), new ByteArrayContent(new byte[2 * 1024 * 1024]));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);

        using var small = await client.PostAsync(At(web, "/small"), new StreamContent(new MemoryStream(new byte[1000])));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal("read", await small.Content.ReadAsStringAsync());

        using var streamed = await client.PostAsync(At(web, "/streamed"), new StreamContent(new MemoryStream(new byte[2 * 1024 * 1024])));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
    }
}
