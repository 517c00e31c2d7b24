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
public abstract partial class Http1UpstreamFailureTests
{
    private const string Get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

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
        await using var forwarder = await StartAsync("- service: app", Service("app", string.Empty, backend));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, Get);

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
        await using var backend = Silent();
        await using var forwarder = await StartAsync("- { service: app, timeout: 1s, retries: { attempts: 0 } }", Service("app", string.Empty, backend));
        var (status, _, _) = await ExchangeAsync(forwarder.EndPoint("web"), Get);
        Assert.Equal(504, status);
        Assert.Equal(1, forwarder.Metrics.Route("web", "route-0").Responses(4));
    }

    [Fact]
    public async Task NoEndpointReachable_Gets503()
    {
        var closedPort = FreeClosedPort();
        var services = $"app:\n  connectAttempts: 2\n  endpoints:\n    - address: 127.0.0.1:{closedPort}";
        await using var forwarder = await StartAsync("- service: app", services);
        var (status, _, body) = await ExchangeAsync(forwarder.EndPoint("web"), Get);
        Assert.Equal(503, status);
        Assert.Contains("503", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadResponseHead_Gets502_AndTheConnectionIsDropped()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
            return true;
        });
        await using var forwarder = await StartAsync("- { service: app, retries: { attempts: 0 } }", Service("app", string.Empty, backend));
        Assert.Equal(502, (await ExchangeAsync(forwarder.EndPoint("web"), Get)).Status);
        Assert.Equal(502, (await ExchangeAsync(forwarder.EndPoint("web"), Get)).Status);
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
        await using var forwarder = await StartAsync("- service: app", Service("app", "http: { maxConnections: 1 }", backend));
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
    public async Task RequestsWithBodies_UpstreamNeverAnswers_EachClientGetsThe504()
    {
        await using var backend = Silent();
        await using var forwarder = await StartAsync("- { service: app, timeout: 1s }", Service("app", string.Empty, backend));
        var statuses = await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
            ExchangeAsync(forwarder.EndPoint("web"), $"POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")));
        Assert.All(statuses, response => Assert.Equal(504, response.Status));
    }

    [Fact]
    public async Task BodyTrickledSlowerThanTheRouteTimeout_GetsTheUpstreamsAnswer()
    {
        await using var backend = HttpTestBackend.Text("stored");
        await using var forwarder = await StartAsync("- { service: app, timeout: 1s }", Service("app", string.Empty, backend), "bodyTimeout: 20s");
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
        await using var forwarder = await StartAsync("- { service: app, timeout: 30s }", ServiceAt(backend.Address), "bodyTimeout: 1s");
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part of it");

        var reader = new SocketReader(socket);
        var (status, head, _) = await ReadResponseAsync(reader);
        Assert.Equal(408, status);
        Assert.Equal("close", SocketReader.HeaderOf(head, "connection"));
        await upstreamClosed.Task.WaitAsync(SocketClient.ReadTimeout);
    }

    /// <summary>An upstream that takes the request and never answers; it lets go once the proxy closes the connection.</summary>
    private static HttpTestBackend Silent() => new(async (_, socket) =>
    {
        while (await socket.ReceiveAsync(new byte[1], SocketFlags.None) > 0)
        {
        }

        return false;
    });

    /// <summary>An upstream that answers every request with <paramref name="status"/> and keeps the connection.</summary>
    private static HttpTestBackend Answering(int status, string body, string extraHeaders = "") => new(async (_, socket) =>
    {
        await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(status, body, extraHeaders));
        return true;
    });

    /// <summary>Service "app" with one endpoint at <paramref name="address"/>.</summary>
    private static string ServiceAt(string address) => $"app:\n  endpoints:\n    - address: {address}";

    private static int FreeClosedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>A forwarder with the http listener "web" on this class's engine.</summary>
    private Task<RunningForwarder> StartAsync(string routes, string services, string http = "")
        => RunningForwarder.StartAsync(Config(routes, services, http, Engine));
}
