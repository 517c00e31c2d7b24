using System.Net.Sockets;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>Runs every Http1UpstreamFailureTests test on the epoll engine.</summary>
public sealed class EpollEngineHttp1UpstreamFailureTests : Http1UpstreamFailureTests
{
    protected override string Engine => "epoll";
}

/// <summary>Runs every Http1UpstreamFailureTests test on the pipes engine.</summary>
public sealed class PipesEngineHttp1UpstreamFailureTests : Http1UpstreamFailureTests
{
    protected override string Engine => "pipes";
}

/// <summary>
/// Upstreams that fail: before the response (an error status or a retry), after it started (the
/// client sees a reset, never a cut response passed off as whole), slowly (504), or repeatedly
/// (ejected by outlier detection). Pooled connections the upstream closed are never reused.
/// </summary>
public abstract class Http1UpstreamFailureTests
{
    /// <summary>The engine (tcp.engine) the test classes deriving from this one run on.</summary>
    protected abstract string Engine { get; }

    [Fact]
    public async Task UpstreamDyingMidResponse_ResetsTheClient_InsteadOfEndingTheResponse()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + new string('x', 1000));
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
            return false;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");

        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        var reset = false;
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, new CancellationTokenSource(SocketClient.ReadTimeout).Token) is var read and > 0)
            {
                received.Write(buffer, 0, read);
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            reset = true;
        }

        Assert.True(reset, $"the client saw a clean close after {received.Length} bytes instead of a reset");
        Assert.True(received.Length < 100_000, "never the whole response");
        await Eventually.TrueAsync(() => forwarder.Metrics.Route("web", "route-0").Aborted == 1, "the cut response is counted");
    }

    [Fact]
    public async Task UpstreamThatNeverAnswers_Gets504AfterTheRouteTimeout()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            // Says nothing; returns once the proxy gives up and closes the connection.
            while (await socket.ReceiveAsync(new byte[1], SocketFlags.None) > 0)
            {
            }

            return false;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, timeout: 1s, retries: { attempts: 0 } }", Service("app", string.Empty, backend)));
        var (status, _, _) = await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(504, status);
        Assert.Equal(1, forwarder.Metrics.Route("web", "route-0").Responses(4));
    }

    [Fact]
    public async Task NoEndpointReachable_Gets503()
    {
        var closedPort = FreeClosedPort();
        var services = $"app:\n  connectAttempts: 2\n  endpoints:\n    - address: 127.0.0.1:{closedPort}";
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", services));
        var (status, _, body) = await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(503, status);
        Assert.Contains("503", body, StringComparison.Ordinal);
    }

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
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { name: main, service: app, retries: { attempts: 2, on: [reset, 503] } }", services));
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
        await using var unavailable = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(503, "busy"));
            return true;
        });
        await using var good = HttpTestBackend.Text("good");
        await using var forwarder = await RunningForwarder.StartAsync(Config(
            Engine,
            "- { service: app, retries: { attempts: 1, on: [503] } }",
            Service("app", "lb: { policy: round_robin }", unavailable, good)));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("good", (await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Body);
        }

        Assert.NotEmpty(unavailable.Requests);
    }

    [Fact]
    public async Task RetryOnStatus_WhenTheBudgetIsSpent_TheClientGetsTheUpstreamsOwnAnswer()
    {
        await using var unavailable = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(503, "busy here", "X-From: upstream\r\n"));
            return true;
        });
        await using var good = HttpTestBackend.Text("good");
        await using var forwarder = await RunningForwarder.StartAsync(Config(
            Engine,
            "- { name: main, service: app, retries: { attempts: 1, on: [503], budgetPercent: 0, minConcurrent: 0 } }",
            Service("app", "lb: { policy: round_robin }", unavailable, good)));

        // No retry may go: the 503 is the upstream's, headers and body, not one the proxy makes up.
        var answers = new List<(int Status, string Head, string Body)>();
        for (var i = 0; i < 4; i++)
        {
            answers.Add(await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        }

        var refused = answers.Where(a => a.Status == 503).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, a => Assert.Equal(("busy here", "upstream"), (a.Body, SocketReader.HeaderOf(a.Head, "x-from"))));
        Assert.Equal(0, forwarder.Metrics.Route("web", "main").Retries);
    }

    [Fact]
    public async Task RetryOnStatus_NoOtherEndpointLeft_IsNotSentAgainToTheSameOne()
    {
        await using var unavailable = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(503, "busy"));
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(
            Engine,
            "- { service: app, retries: { attempts: 3, on: [503, reset] } }",
            Service("app", string.Empty, unavailable)));

        // As on every path (RetryDecision.NextEndpoint): a retry goes to an endpoint not tried yet, or not at all.
        var (status, _, body) = await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal((503, "busy"), (status, body));
        Assert.Single(unavailable.Requests);
    }

    [Fact]
    public async Task FiveHundreds_EjectTheEndpoint_ThroughOutlierDetection()
    {
        await using var failing = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(500, "boom"));
            return true;
        });
        await using var good = HttpTestBackend.Text("good");
        var services = Service("app", "lb: { policy: round_robin }\noutlierDetection: { consecutiveFailures: 2, baseEjectionTime: 60s, maxEjectionPercent: 50 }", failing, good);
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 0 } }", services));
        var statuses = new List<int>();
        for (var i = 0; i < 40; i++)
        {
            statuses.Add((await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
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
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 0 } }", Service("app", string.Empty, backend)));
        var web = forwarder.EndPoint("web");
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(200, (await ExchangeAsync(web, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
            await Eventually.TrueAsync(() => backend.AcceptedCount == i + 1, "each request's connection was answered");
            await Task.Delay(300);
        }

        Assert.Equal(5, backend.AcceptedCount);
    }

    [Fact]
    public async Task BadResponseHead_Gets502_AndTheConnectionIsDropped()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 0 } }", Service("app", string.Empty, backend)));
        Assert.Equal(502, (await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal(502, (await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal(2, backend.AcceptedCount);
    }

    [Fact]
    public async Task EndpointAtItsConnectionLimit_IsNotDialledAgain_AndTheRequestGets503()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new HttpTestBackend(async (request, socket) =>
        {
            if (request.RequestLine.Contains("/slow", StringComparison.Ordinal))
            {
                await release.Task;
            }

            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "ok"));
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", "http: { maxConnections: 1 }", backend)));
        var web = forwarder.EndPoint("web");

        // The slow request holds the endpoint's only connection...
        var slow = ExchangeAsync(web, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
        await Eventually.TrueAsync(() => backend.Requests.Count == 1, "the slow request reached the backend");

        // ... so another request finds the endpoint full: 503, and no second connection is opened.
        Assert.Equal(503, (await ExchangeAsync(web, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal(1, backend.AcceptedCount);
        Assert.Equal(1, forwarder.Metrics.Service("app").PoolFullCount);

        // Once it is back in the pool, the connection serves the next request.
        release.SetResult();
        Assert.Equal(200, (await slow).Status);

        // The client has its answer a moment before the connection is back in the pool.
        var pool = Assert.Single(forwarder.Runtime.Services["app"].Endpoints).Pool;
        await Eventually.TrueAsync(() => pool.IdleCount == 1, "the connection went back to the pool");
        Assert.Equal(200, (await ExchangeAsync(web, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal(1, backend.AcceptedCount);
    }

    [Fact]
    public async Task BodilessPost_OnAPooledConnectionTheUpstreamResets_ReachesItOnce_AndGets502()
    {
        // Answers the first request on each connection, then resets the connection when it is
        // reused: every pooled connection turns out stale, as if the upstream's keep-alive timeout raced the reuse.
        var posts = 0;
        await using var backend = new TcpTestServer(async socket =>
        {
            var reader = new SocketReader(socket);
            for (var served = 0; await reader.ReadHeadAsync() is { } head; served++)
            {
                if (head.StartsWith("POST", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref posts);
                }

                if (served > 0)
                {
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Close();
                    return;
                }

                await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "ok"));
            }
        });
        var services = $"app:\n  endpoints:\n    - address: {backend.Address}";
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 3, on: [reset] } }", services));
        var web = forwarder.EndPoint("web");

        // Several pooled connections, each with one request served.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")));

        var (status, _, _) = await ExchangeAsync(web, "POST /once HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(502, status);
        Assert.Equal(1, Volatile.Read(ref posts));

        // An idempotent request is sent again after the same failure, and gets its answer.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")));
        Assert.Equal(200, (await ExchangeAsync(web, "DELETE /again HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
    }

    [Fact]
    public async Task WebSocketUpgrade_OnAPooledConnectionTheUpstreamResets_IsNotSentAgain()
    {
        // As the BodilessPost test's upstream: each reused connection turns out stale.
        var upgrades = 0;
        await using var backend = new TcpTestServer(async socket =>
        {
            var reader = new SocketReader(socket);
            for (var served = 0; await reader.ReadHeadAsync() is { } head; served++)
            {
                if (head.Contains("Upgrade: websocket", StringComparison.OrdinalIgnoreCase))
                {
                    Interlocked.Increment(ref upgrades);
                }

                if (served > 0)
                {
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Close();
                    return;
                }

                await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "ok"));
            }
        });
        var services = $"app:\n  endpoints:\n    - address: {backend.Address}";
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 3, on: [reset] } }", services));
        var web = forwarder.EndPoint("web");
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")));

        // The one rule of every path: an upgrade is never sent twice, as a WebSocket from an HTTP/2 client is not.
        var (status, _, _) = await ExchangeAsync(web, "GET /socket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        Assert.Equal(502, status);
        Assert.Equal(1, Volatile.Read(ref upgrades));
    }

    [Fact]
    public async Task RequestsWithBodies_UpstreamNeverAnswers_EachClientGetsThe504()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            // Reads the whole request, then says nothing until the proxy gives up.
            while (await socket.ReceiveAsync(new byte[1], SocketFlags.None) > 0)
            {
            }

            return false;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, timeout: 1s }", Service("app", string.Empty, backend)));
        var statuses = await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
            ExchangeAsync(forwarder.EndPoint("web"), $"POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")));
        Assert.All(statuses, response => Assert.Equal(504, response.Status));
    }

    [Fact]
    public async Task BodyTrickledSlowerThanTheRouteTimeout_GetsTheUpstreamsAnswer()
    {
        await using var backend = HttpTestBackend.Text("stored");
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, timeout: 1s }", Service("app", string.Empty, backend), "bodyTimeout: 20s"));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n");

        // Six bytes over about three seconds: the upload takes longer than the route's timeout,
        // which only starts once the upstream has the whole request.
        var started = DateTime.UtcNow;
        foreach (var piece in "abcdef")
        {
            await Task.Delay(500);
            await HttpTestBackend.SendAsync(socket, piece.ToString());
        }

        var (status, _, body) = await ReadResponseAsync(new SocketReader(socket));
        Assert.True(DateTime.UtcNow - started > TimeSpan.FromSeconds(1), "the upload outlasted the route timeout");
        Assert.Equal((200, "stored"), (status, body));
        Assert.Equal("abcdef", System.Text.Encoding.ASCII.GetString(Assert.Single(backend.Requests).Body));
    }

    [Fact]
    public async Task StalledBody_Gets408_AndTheUpstreamConnectionIsClosed()
    {
        var upstreamClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = new TcpTestServer(async socket =>
        {
            await new SocketReader(socket).ReadToEndAsync();
            upstreamClosed.TrySetResult();
        });
        var services = $"app:\n  endpoints:\n    - address: {backend.Address}";
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, timeout: 30s }", services, "bodyTimeout: 1s"));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part of it");

        var reader = new SocketReader(socket);
        var (status, head, _) = await ReadResponseAsync(reader);
        Assert.Equal(408, status);
        Assert.Equal("close", SocketReader.HeaderOf(head, "connection"));
        await upstreamClosed.Task.WaitAsync(SocketClient.ReadTimeout);
    }

    [Fact]
    public async Task ClientCausedFailures_DoNotEjectAHealthyEndpoint()
    {
        await using var first = HttpTestBackend.Text("one");
        await using var second = HttpTestBackend.Text("two");
        var services = Service("app", "lb: { policy: round_robin }\noutlierDetection: { consecutiveFailures: 2, baseEjectionTime: 60s, maxEjectionPercent: 50 }", first, second);
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 0 } }", services, "bodyTimeout: 1s"));
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
            answers.Add((await ExchangeAsync(web, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Body);
        }

        Assert.Equal(["one", "two"], answers.Distinct().Order());
        var service = forwarder.Runtime.Services["app"];
        Assert.All(service.Endpoints, endpoint => Assert.Equal(0, endpoint.Health.Ejections));
    }

    private static int FreeClosedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static string Config(string engine, string routes, string services, string http = "") => Http1ProxyTests.Config(routes, services, http, engine);
}
