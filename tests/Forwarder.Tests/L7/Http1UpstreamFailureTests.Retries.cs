using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>Retries to another endpoint, pooled connections the upstream closed, and outlier ejection.</summary>
public abstract partial class Http1UpstreamFailureTests
{
    private const string RoundRobinEjectingAfterTwoFailures = "lb: { policy: round_robin }\noutlierDetection: { consecutiveFailures: 2, baseEjectionTime: 60s, maxEjectionPercent: 50 }";

    [Fact]
    public async Task IdempotentRequest_IsRetriedOnAnotherEndpoint_WhenTheFirstResets_ButPostIsNot()
    {
        await using var broken = new HttpTestBackend((_, socket) =>
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
            return Task.FromResult(false);
        });
        await using var good = HttpTestBackend.Text("good");
        var services = Service("app", "lb: { policy: round_robin }", broken, good);
        await using var forwarder = await StartAsync("- { name: main, service: app, retries: { attempts: 2, on: [reset, 503] } }", services);
        var web = forwarder.EndPoint("web");

        for (var i = 0; i < 4; i++)
        {
            var (status, _, body) = await ExchangeAsync(web, $"GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n");
            Assert.Equal((200, "good"), (status, body));
        }

        Assert.True(forwarder.Metrics.Route("web", "main").Retries >= 1, "at least one request went to the broken endpoint first");

        // A POST with a body cannot be replayed: whoever gets it, it is answered once.
        var answers = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            answers.Add((await ExchangeAsync(web, "POST /once HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")).Status);
        }

        Assert.Contains(502, answers);
        Assert.Contains(200, answers);
    }

    [Fact]
    public async Task RetryOnStatus_TriesTheNextEndpoint()
    {
        await using var unavailable = Answering(503, "busy");
        await using var good = HttpTestBackend.Text("good");
        await using var forwarder = await StartAsync(
            "- { service: app, retries: { attempts: 1, on: [503] } }",
            Service("app", "lb: { policy: round_robin }", unavailable, good));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("good", (await ExchangeAsync(forwarder.EndPoint("web"), Get)).Body);
        }

        Assert.NotEmpty(unavailable.Requests);
    }

    [Fact]
    public async Task RetryOnStatus_WhenTheBudgetIsSpent_TheClientGetsTheUpstreamsOwnAnswer()
    {
        await using var unavailable = Answering(503, "busy here", "X-From: upstream\r\n");
        await using var good = HttpTestBackend.Text("good");
        await using var forwarder = await StartAsync(
            "- { name: main, service: app, retries: { attempts: 1, on: [503], budgetPercent: 0, minConcurrent: 0 } }",
            Service("app", "lb: { policy: round_robin }", unavailable, good));

        // No retry may go: the 503 is the upstream's, headers and body, not one the proxy makes up.
        var answers = new List<(int Status, string Head, string Body)>();
        for (var i = 0; i < 4; i++)
        {
            answers.Add(await ExchangeAsync(forwarder.EndPoint("web"), Get));
        }

        var refused = answers.Where(a => a.Status == 503).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, a => Assert.Equal(("busy here", "upstream"), (a.Body, SocketReader.HeaderOf(a.Head, "x-from"))));
        Assert.Equal(0, forwarder.Metrics.Route("web", "main").Retries);
    }

    [Fact]
    public async Task RetryOnStatus_NoOtherEndpointLeft_IsNotSentAgainToTheSameOne()
    {
        await using var unavailable = Answering(503, "busy");
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 3, on: [503, reset] } }", Service("app", string.Empty, unavailable));

        // As on every path (RetryDecision.NextEndpoint): a retry goes to an endpoint not tried yet, or not at all.
        var (status, _, body) = await ExchangeAsync(forwarder.EndPoint("web"), Get);
        Assert.Equal((503, "busy"), (status, body));
        Assert.Single(unavailable.Requests);
    }

    [Fact]
    public async Task FiveHundreds_EjectTheEndpoint_ThroughOutlierDetection()
    {
        await using var failing = Answering(500, "boom");
        await using var good = HttpTestBackend.Text("good");
        var services = Service("app", RoundRobinEjectingAfterTwoFailures, failing, good);
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 0 } }", services);
        var statuses = new List<int>();
        for (var i = 0; i < 40; i++)
        {
            statuses.Add((await ExchangeAsync(forwarder.EndPoint("web"), Get)).Status);
        }

        // Two 500s eject the failing endpoint; the balancer rebuilds on another thread, so a
        // busy machine may let a few more through first, but never for long.
        Assert.True(statuses.Count(s => s == 500) >= 2, string.Join(",", statuses));
        Assert.True(statuses.TakeLast(20).All(s => s == 200), string.Join(",", statuses));
    }

    [Fact]
    public async Task PooledConnectionTheUpstreamClosed_IsNotReused()
    {
        // Answers, then closes the connection a moment later, as a server with a short keep-alive timeout does.
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "ok"));
            await Task.Delay(100);
            return false;
        });
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 0 } }", Service("app", string.Empty, backend));
        var web = forwarder.EndPoint("web");
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(200, (await ExchangeAsync(web, Get)).Status);
            await Eventually.TrueAsync(() => backend.AcceptedCount == i + 1, "each request's connection was answered");
            await Task.Delay(300);
        }

        Assert.Equal(5, backend.AcceptedCount);
    }

    [Fact]
    public async Task BodilessPost_OnAPooledConnectionTheUpstreamResets_ReachesItOnce_AndGets502()
    {
        await using var backend = new StaleOnReuseUpstream(head => head.StartsWith("POST", StringComparison.Ordinal));
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 3, on: [reset] } }", ServiceAt(backend.Address));
        var web = forwarder.EndPoint("web");

        // Several pooled connections, each with one request served.
        await WarmPoolAsync(web);

        var (status, _, _) = await ExchangeAsync(web, "POST /once HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(502, status);
        Assert.Equal(1, backend.Counted);

        // An idempotent request is sent again after the same failure, and gets its answer.
        await WarmPoolAsync(web);
        Assert.Equal(200, (await ExchangeAsync(web, "DELETE /again HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
    }

    [Fact]
    public async Task WebSocketUpgrade_OnAPooledConnectionTheUpstreamResets_IsNotSentAgain()
    {
        await using var backend = new StaleOnReuseUpstream(head => head.Contains("Upgrade: websocket", StringComparison.OrdinalIgnoreCase));
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 3, on: [reset] } }", ServiceAt(backend.Address));
        var web = forwarder.EndPoint("web");
        await WarmPoolAsync(web);

        // The one rule of every path: an upgrade is never sent twice, as a WebSocket from an HTTP/2 client is not.
        var (status, _, _) = await ExchangeAsync(web, "GET /socket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        Assert.Equal(502, status);
        Assert.Equal(1, backend.Counted);
    }

    [Fact]
    public async Task ClientCausedFailures_DoNotEjectAHealthyEndpoint()
    {
        await using var first = HttpTestBackend.Text("one");
        await using var second = HttpTestBackend.Text("two");
        var services = Service("app", RoundRobinEjectingAfterTwoFailures, first, second);
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 0 } }", services, "bodyTimeout: 1s");
        var web = forwarder.EndPoint("web");

        // Stalled bodies, broken chunked bodies and clients that reset mid-body, each several times.
        var stalled = Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"));
        var broken = Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"));
        var responses = await Task.WhenAll(stalled.Concat(broken));
        Assert.Equal(4, responses.Count(r => r.Status == 408));
        Assert.Equal(4, responses.Count(r => r.Status == 400));
        for (var i = 0; i < 4; i++)
        {
            using var socket = await SocketClient.ConnectAsync(web);
            await HttpTestBackend.SendAsync(socket, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
            await Task.Delay(100);
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }

        // Both endpoints still serve, and outlier detection never counted any of that against them.
        var answers = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            answers.Add((await ExchangeAsync(web, Get)).Body);
        }

        Assert.Equal(["one", "two"], answers.Distinct().Order());
        var service = forwarder.Runtime.Services["app"];
        Assert.All(service.Endpoints, endpoint => Assert.Equal(0, endpoint.Health.Ejections));
    }

    /// <summary>Four requests at once, so the pool holds several connections, each with one request served.</summary>
    private static Task WarmPoolAsync(System.Net.IPEndPoint web)
        => Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")));
}
