using System.Net;
using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// HTTP/2 clients' requests and HTTP/2 services go through the service's own dialing and the
/// route's retry rule: <c>retries.on</c> statuses, the retry budget, connectTimeout, node links.
/// </summary>
public sealed class Http2RetryAndDialTests
{
    private const string Held = "x-hold";

    /// <summary>Answers 503 to everything.</summary>
    private static HttpTestBackend Failing() => new(async (_, socket) =>
    {
        await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(503, "busy"));
        return true;
    });

    /// <summary>Answers 200 "fine", requests carrying <see cref="Held"/> only once <paramref name="release"/> completes.</summary>
    private static HttpTestBackend Serving(Task release) => new(async (request, socket) =>
    {
        if (request.Header(Held) is not null)
        {
            await release;
        }

        await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "fine"));
        return true;
    });

    private static string TwoEndpoints(HttpTestBackend first, HttpTestBackend second)
        => $"app:\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - {{ address: {first.Address}, weight: 100 }}\n    - {{ address: {second.Address}, weight: 1 }}";

    [Fact]
    public async Task H2Client_StatusNamedInRetriesOn_IsRetriedElsewhere()
    {
        await using var failing = Failing();
        await using var serving = Serving(Task.CompletedTask);
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: app, retries: { attempts: 1, on: [503] } }", TwoEndpoints(failing, serving)));
        using var client = H2cClient();

        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/item"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("fine", await response.Content.ReadAsStringAsync());
        Assert.Single(failing.Requests);
        Assert.Single(serving.Requests);

        // Not named in retries.on: the upstream's answer is the client's.
        await using var strict = await RunningForwarder.StartAsync(Config("- { service: app, retries: { attempts: 1, on: [502] } }", TwoEndpoints(failing, serving)));
        using var unretried = await client.GetAsync(At(strict.EndPoint("web"), "/item"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unretried.StatusCode);
    }

    [Fact]
    public async Task H2Client_RetryBudget_LimitsRetriesInFlight()
    {
        var release = new TaskCompletionSource();
        await using var failing = Failing();
        await using var serving = Serving(release.Task);
        await using var forwarder = await RunningForwarder.StartAsync(Config(
            "- { service: app, retries: { attempts: 1, on: [503], budgetPercent: 0, minConcurrent: 1 } }", TwoEndpoints(failing, serving)));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");
        try
        {
            // The first request's retry takes the one slot and stays in flight at the second endpoint.
            using var heldRequest = H2Request(HttpMethod.Get, At(web, "/held"));
            heldRequest.Headers.Add(Held, "1");
            var held = client.SendAsync(heldRequest);
            await Eventually.TrueAsync(() => serving.Requests.Count == 1, "the retried request waits at the serving endpoint");

            // Meanwhile the budget is spent: the next failure goes back to the client as it came.
            using var refused = await client.GetAsync(At(web, "/second"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);

            release.SetResult();
            using var first = await held;
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

            // The slot is back: retried again.
            using var third = await client.GetAsync(At(web, "/third"));
            Assert.Equal(HttpStatusCode.OK, third.StatusCode);
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task Http2Service_SilentEndpoint_ConnectTimeoutHonoured_NextEndpointServes(string engine)
    {
        using var silent = new SilentEndpoint();
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("reached"));
        var services = $"h2:\n  http: {{ version: \"2\" }}\n  connectTimeout: 300ms\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - {{ address: '127.0.0.1:{silent.Port}', weight: 100 }}\n    - {{ address: '127.0.0.1:{backend.Port}', weight: 1 }}";

        // The route's timeout is well past connectTimeout and well short of the handler's 5 s default.
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: h2, timeout: 4s }", services, http: "http2: " + engine));
        using var client = H2cClient();
        using var response = await client.GetAsync(At(forwarder.EndPoint("web"), "/x"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("reached", await response.Content.ReadAsStringAsync());

        var (status, _, body) = await ExchangeAsync(forwarder.EndPoint("web"), "GET /y HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal((200, "reached"), (status, body));
    }

    [Fact]
    public async Task Http2Service_EndpointMovedBehindANodeOnReload_IsReachedThroughTheLink()
    {
        using var mesh = new TestMesh();
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync($"over {context.Request.Protocol}"));
        var hosted = $"127.0.0.1:{backend.Port}";
        await using var nodeB = await mesh.StartNodeBAsync(hosted);
        var link = $"127.0.0.1:{((IPEndPoint)nodeB.Service<Forwarder.Tunnels.NodeLinkListener>().BoundEndPoint!).Port}";
        string NodeA(string endpoint) => $"""
            node:
              name: edge-a
              certificate: {Path.Combine(mesh.Directory, "edge-a.pem")}
              key: {Path.Combine(mesh.Directory, "edge-a.key")}
              ca: {Path.Combine(mesh.Directory, "ca.pem")}
              peers:
                - {"{"} name: edge-b, address: '{link}' {"}"}
            listeners:
              - name: web
                listen: '127.0.0.1:0'
                protocol: http
                routes:
                  - service: h2
            services:
              h2:
                http: {"{"} version: "2" {"}"}
                connectAttempts: 1
                endpoints:
                  - {endpoint}
            """;
        await using var nodeA = await RunningForwarder.StartAsync(NodeA($"address: '{hosted}'"));
        using var client = H2cClient();

        // Dialled directly first: a connection the pool keeps.
        using (var direct = await client.GetAsync(At(nodeA.EndPoint("web"), "/direct")))
        {
            Assert.Equal("over HTTP/2", await direct.Content.ReadAsStringAsync());
        }

        Assert.Equal(0, nodeA.Metrics.Peer("edge-b").StreamsOut);

        // The same address, now on edge-b: its kept connection must not be used any more.
        Assert.True(await nodeA.ReloadAsync(NodeA($"{{ address: '{hosted}', node: edge-b }}")));
        using var response = await client.GetAsync(At(nodeA.EndPoint("web"), "/x"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("over HTTP/2", await response.Content.ReadAsStringAsync());

        var (status, _, body) = await ExchangeAsync(nodeA.EndPoint("web"), "GET /y HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal((200, "over HTTP/2"), (status, body));
        Assert.True(nodeA.Metrics.Peer("edge-b").StreamsOut >= 1, "the HTTP/2 connection went through the link");
    }
}
