using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>Runs every Http1BadInputTests test on the epoll engine.</summary>
public sealed class EpollEngineHttp1BadInputTests : Http1BadInputTests
{
    protected override string Engine => "epoll";
}

/// <summary>Runs every Http1BadInputTests test on the pipes engine.</summary>
public sealed class PipesEngineHttp1BadInputTests : Http1BadInputTests
{
    protected override string Engine => "pipes";
}

/// <summary>
/// Malformed and hostile requests on raw sockets: each is refused with its status and the
/// connection closed, nothing reaches an upstream, and a well-behaved client on another
/// connection is served throughout.
/// </summary>
public abstract class Http1BadInputTests : IAsyncLifetime
{
    /// <summary>The engine (tcp.engine) the test classes deriving from this one run on.</summary>
    protected abstract string Engine { get; }

    private HttpTestBackend _backend = null!;
    private RunningForwarder _forwarder = null!;

    public async Task InitializeAsync()
    {
        _backend = HttpTestBackend.Text("fine");
        _forwarder = await RunningForwarder.StartAsync(Config(
            Engine,
            "- service: app",
            Service("app", string.Empty, _backend),
            "headerTimeout: 1s\nmaxRequestLine: 1KiB\nmaxHeaderBytes: 4KiB\nmaxBodySize: 1KiB"));
    }

    public async Task DisposeAsync()
    {
        await _forwarder.DisposeAsync();
        await _backend.DisposeAsync();
    }

    public static TheoryData<string, string, int> Refused => new()
    {
        { "Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
        { "two different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400 },
        { "a list of different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", 400 },
        { "a signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400 },
        { "a coding after chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400 },
        { "obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400 },
        { "a bare LF in the head", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400 },
        { "a space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400 },
        { "no Host", "GET / HTTP/1.1\r\n\r\n", 400 },
        { "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
        { "a control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\u0001b\r\n\r\n", 400 },
        { "a request line too long", $"GET /{new string('a', 2000)} HTTP/1.1\r\nHost: a\r\n\r\n", 414 },
        { "a head too large", $"GET / HTTP/1.1\r\nHost: a\r\n{string.Concat(Enumerable.Range(0, 100).Select(i => $"X-Filler-{i}: {new string('v', 60)}\r\n"))}\r\n", 431 },
        { "an unknown version", "GET / HTTP/2.7\r\nHost: a\r\n\r\n", 505 },
        { "a body over maxBodySize", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413 },
        { "userinfo-like Host", "GET / HTTP/1.1\r\nHost: a:80@evil.com\r\n\r\n", 400 },
        { "a fragment in Host", "GET / HTTP/1.1\r\nHost: evil.com#.x\r\n\r\n", 400 },
        { "a space in Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400 },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task MalformedHead_IsRefused_ConnectionClosed_NothingForwarded(string shape, string request, int expected)
    {
        var healthy = await SocketClient.ConnectAsync(_forwarder.EndPoint("web"));
        using (healthy)
        {
            var healthyReader = new SocketReader(healthy);
            await HttpTestBackend.SendAsync(healthy, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n");
            Assert.Equal(200, (await ReadResponseAsync(healthyReader)).Status);

            using var socket = await SocketClient.ConnectAsync(_forwarder.EndPoint("web"));
            await HttpTestBackend.SendAsync(socket, request);
            var reader = new SocketReader(socket);
            var (status, head, _) = await ReadResponseAsync(reader);
            Assert.True(expected == status, $"{shape}: expected {expected}, got {status}");
            Assert.Equal("close", SocketReader.HeaderOf(head, "connection"));
            Assert.Empty(await reader.ReadToEndAsync());

            // The other connection never noticed.
            await HttpTestBackend.SendAsync(healthy, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
            Assert.Equal(200, (await ReadResponseAsync(healthyReader)).Status);
        }

        Assert.Equal(["/before", "/after"], _backend.Requests.Select(r => r.RequestLine.Split(' ')[1]));
    }

    public static TheoryData<string, string> BrokenChunks => new()
    {
        { "a size that is not hex", "zz\r\nhello\r\n0\r\n\r\n" },
        { "a size with a sign", "+5\r\nhello\r\n0\r\n\r\n" },
        { "data longer than its size", "3\r\nhello\r\n0\r\n\r\n" },
        { "a bare LF after the size", "5\nhello\r\n0\r\n\r\n" },
        { "a size too large to hold", "fffffffffffffffff\r\nhello\r\n0\r\n\r\n" },
    };

    [Theory]
    [MemberData(nameof(BrokenChunks))]
    public async Task BrokenChunkedBody_Gets400_AndTheUpstreamSeesNoCompleteRequest(string shape, string body)
    {
        using var socket = await SocketClient.ConnectAsync(_forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, $"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        var reader = new SocketReader(socket);
        var (status, _, _) = await ReadResponseAsync(reader);
        Assert.True(status == 400, $"{shape}: got {status}");
        Assert.Empty(await reader.ReadToEndAsync());
        Assert.Empty(_backend.Requests);
    }

    [Fact]
    public async Task ListOfEqualContentLengths_IsForwardedAsOneNumber()
    {
        var (status, _, _) = await ExchangeAsync(_forwarder.EndPoint("web"), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello");
        Assert.Equal(200, status);
        var seen = Assert.Single(_backend.Requests);
        Assert.Equal("5", seen.Header("content-length"));
        Assert.Single(seen.Head.Split("\r\n"), line => line.StartsWith("Content-Length", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("hello", Encoding.ASCII.GetString(seen.Body));
    }

    [Fact]
    public async Task ChunkedBodyOverMaxBodySize_Gets413()
    {
        using var socket = await SocketClient.ConnectAsync(_forwarder.EndPoint("web"));
        var chunk = new string('x', 800);
        await HttpTestBackend.SendAsync(socket, $"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n");
        Assert.Equal(413, (await ReadResponseAsync(new SocketReader(socket))).Status);
        Assert.Empty(_backend.Requests);
    }

    [Fact]
    public async Task ChunkSizeOverMaxBodySize_Gets413_AsSoonAsTheSizeLineIsRead()
    {
        using var socket = await SocketClient.ConnectAsync(_forwarder.EndPoint("web"));

        // Only the size line: the proxy must not wait for (or pass on) data it already knows is too much.
        await HttpTestBackend.SendAsync(socket, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n");
        Assert.Equal(413, (await ReadResponseAsync(new SocketReader(socket))).Status);
        Assert.Empty(_backend.Requests);
    }

    [Fact]
    public async Task SlowClientThatNeverFinishesItsHead_Gets408()
    {
        using var socket = await SocketClient.ConnectAsync(_forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.1\r\nHost: a\r\n");
        var started = DateTime.UtcNow;
        var (status, _, _) = await ReadResponseAsync(new SocketReader(socket));
        Assert.Equal(408, status);

        // headerTimeout is 1s, checked every tick (50 ms); the upper bound is for a loaded machine.
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(20));
        Assert.Empty(_backend.Requests);
    }

    [Fact]
    public async Task GarbageBytes_Get400_AndTheListenerKeepsServing()
    {
        using (var socket = await SocketClient.ConnectAsync(_forwarder.EndPoint("web")))
        {
            var garbage = new byte[4096];
            new Random(7).NextBytes(garbage);
            garbage[0] = 0x16; // A TLS record, as a client speaking https to an http port sends.
            await socket.SendAsync(garbage, SocketFlags.None);
            var reader = new SocketReader(socket);
            var head = await reader.ReadHeadAsync();
            Assert.NotNull(head);
            Assert.StartsWith("HTTP/1.1 400", head, StringComparison.Ordinal);
        }

        Assert.Equal("fine", (await ExchangeAsync(_forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Body);
        Assert.Equal(Encoding.ASCII.GetBytes("GET / HTTP/1.1"), Encoding.ASCII.GetBytes(Assert.Single(_backend.Requests).RequestLine));
    }

    private static string Config(string engine, string routes, string services, string http = "") => Http1ProxyTests.Config(routes, services, http, engine);
}
