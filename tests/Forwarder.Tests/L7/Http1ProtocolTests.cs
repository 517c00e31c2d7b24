using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>Runs every Http1ProtocolTests test on the epoll engine.</summary>
public sealed class EpollEngineHttp1ProtocolTests : Http1ProtocolTests
{
    protected override string Engine => "epoll";
}

/// <summary>Runs every Http1ProtocolTests test on the pipes engine.</summary>
public sealed class PipesEngineHttp1ProtocolTests : Http1ProtocolTests
{
    protected override string Engine => "pipes";
}

/// <summary>The parts of HTTP/1.1 a proxy must carry through: 100-continue, upgrades, bodiless responses, HTTP/1.0 clients.</summary>
public abstract class Http1ProtocolTests
{
    /// <summary>The engine (tcp.engine) the test classes deriving from this one run on.</summary>
    protected abstract string Engine { get; }

    [Fact]
    public async Task ExpectContinue_TheUpstreams100ReachesTheClient_BeforeItSendsTheBody()
    {
        await using var backend = HttpTestBackend.Text("stored");
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "PUT /file HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        var interim = await reader.ReadHeadAsync();
        Assert.StartsWith("HTTP/1.1 100", interim, StringComparison.Ordinal);

        await HttpTestBackend.SendAsync(socket, "hello");
        var (status, _, body) = await ReadResponseAsync(reader);
        Assert.Equal((200, "stored"), (status, body));
        Assert.Equal("hello", Encoding.ASCII.GetString(Assert.Single(backend.Requests).Body));
    }

    [Fact]
    public async Task ExpectContinue_UpstreamSlowToSay100_IsNotTheClientStallingItsBody()
    {
        await using var backend = new TcpTestServer(async socket =>
        {
            var reader = new SocketReader(socket);
            if (await reader.ReadHeadAsync() is null)
            {
                return;
            }

            // Longer than the listener's bodyTimeout: the client is waiting for this, not stalling.
            await Task.Delay(2500);
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 100 Continue\r\n\r\n");
            await reader.ReadExactlyAsync(5);
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "stored"));
        });
        var services = $"app:\n  endpoints:\n    - address: {backend.Address}";
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, timeout: 30s }", services, "bodyTimeout: 1s"));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "PUT /file HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 100", await reader.ReadHeadAsync(), StringComparison.Ordinal);
        await HttpTestBackend.SendAsync(socket, "hello");
        Assert.Equal((200, "stored"), Pick(await ReadResponseAsync(reader)));

        static (int, string) Pick((int Status, string Head, string Body) response) => (response.Status, response.Body);
    }

    [Fact]
    public async Task Upgrade_After101_BytesFlowBothWays()
    {
        await using var backend = new HttpTestBackend(async (request, socket) =>
        {
            Assert.Equal("websocket", request.Header("upgrade"));
            Assert.Equal("upgrade", request.Header("connection"), ignoreCase: true);
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");

            // From here on it is not HTTP: echo frames upper-cased until the client closes.
            var buffer = new byte[1024];
            while (await socket.ReceiveAsync(buffer, SocketFlags.None) is var read and > 0)
            {
                await socket.SendAsync(Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(buffer, 0, read).ToUpperInvariant()), SocketFlags.None);
            }

            return false;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        var head = await reader.ReadHeadAsync();
        Assert.StartsWith("HTTP/1.1 101", head, StringComparison.Ordinal);
        Assert.Equal("websocket", SocketReader.HeaderOf(head!, "upgrade"));

        foreach (var message in new[] { "ping", "frames are just bytes" })
        {
            await HttpTestBackend.SendAsync(socket, message);
            Assert.Equal(message.ToUpperInvariant(), Encoding.ASCII.GetString(await reader.ReadExactlyAsync(message.Length) ?? []));
        }

        socket.Shutdown(SocketShutdown.Send);
        Assert.Empty(await reader.ReadToEndAsync());
    }

    /// <summary>An upstream that switches protocols whenever it is asked to, whatever to: only the proxy can stop an h2c upgrade.</summary>
    private static HttpTestBackend SwitchesOnAnyUpgrade() => new(async (request, socket) =>
    {
        if (request.Header("upgrade") is { } protocol)
        {
            await HttpTestBackend.SendAsync(socket, $"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n");
            return false;
        }

        await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(200, "plain"));
        return true;
    });

    [Fact]
    public async Task H2cUpgrade_IsNotTunnelled_TheRequestGoesOnAsAPlainOne()
    {
        await using var backend = SwitchesOnAnyUpgrade();
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "GET /private HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
        var (status, head, body) = await ReadResponseAsync(reader);
        Assert.Equal((200, "plain"), (status, body));
        Assert.Null(SocketReader.HeaderOf(head, "upgrade"));

        var seen = Assert.Single(backend.Requests);
        Assert.Null(seen.Header("upgrade"));
        Assert.Null(seen.Header("http2-settings"));
        Assert.Null(seen.Header("connection"));

        // Still HTTP/1.1 with the proxy in the middle: the next request is routed and logged as any other.
        await HttpTestBackend.SendAsync(socket, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(200, (await ReadResponseAsync(reader)).Status);
        Assert.Equal(2, backend.Requests.Count);
    }

    [Fact]
    public async Task WebSocketUpgrade_OnARouteThatDisallowsIt_GoesOnAsAPlainRequest()
    {
        await using var backend = SwitchesOnAnyUpgrade();
        await using var forwarder = await RunningForwarder.StartAsync(Config(
            Engine,
            "- { match: { path: { prefix: /ws } }, service: app }\n- { service: app, websocket: false }", Service("app", string.Empty, backend)));
        const string upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

        Assert.Equal((200, "plain"), Pick(await ExchangeAsync(forwarder.EndPoint("web"), "GET /other HTTP/1.1\r\nHost: a\r\n" + upgrade)));
        Assert.Null(Assert.Single(backend.Requests).Header("upgrade"));

        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        await HttpTestBackend.SendAsync(socket, "GET /ws HTTP/1.1\r\nHost: a\r\n" + upgrade);
        Assert.StartsWith("HTTP/1.1 101", await new SocketReader(socket).ReadHeadAsync(), StringComparison.Ordinal);

        static (int, string) Pick((int Status, string Head, string Body) response) => (response.Status, response.Body);
    }

    [Fact]
    public async Task Http10KeepAlive_TheResponseSaysKeepAlive_AndTheConnectionServesAgain()
    {
        await using var backend = HttpTestBackend.Text("ok");
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);
        for (var i = 0; i < 2; i++)
        {
            await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
            var (status, head, _) = await ReadResponseAsync(reader);
            Assert.Equal(200, status);
            Assert.Equal("keep-alive", SocketReader.HeaderOf(head, "connection"));
        }
    }

    [Fact]
    public async Task UnaskedFor101_Gets502()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { service: app, retries: { attempts: 0 } }", Service("app", string.Empty, backend)));
        Assert.Equal(502, (await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
    }

    [Fact]
    public async Task HeadAnd204And304_HaveNoBody_AndTheConnectionGoesOn()
    {
        await using var backend = new HttpTestBackend(async (request, socket) =>
        {
            var response = request.RequestLine.Split(' ')[1] switch
            {
                "/head" => "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
                "/empty" => "HTTP/1.1 204 No Content\r\n\r\n",
                "/cached" => "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
                _ => HttpTestBackend.Response(200, "last"),
            };
            await HttpTestBackend.SendAsync(socket, response);
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "HEAD /head HTTP/1.1\r\nHost: a\r\n\r\n");
        var head = await reader.ReadHeadAsync();
        Assert.Equal("1234", SocketReader.HeaderOf(head!, "content-length"));

        await HttpTestBackend.SendAsync(socket, "GET /empty HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 204", await reader.ReadHeadAsync(), StringComparison.Ordinal);

        await HttpTestBackend.SendAsync(socket, "GET /cached HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"v1\"\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 304", await reader.ReadHeadAsync(), StringComparison.Ordinal);

        await HttpTestBackend.SendAsync(socket, "GET /last HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal("last", (await ReadResponseAsync(reader)).Body);
    }

    [Fact]
    public async Task Http10Client_GetsItsResponse_AndTheConnectionCloses()
    {
        await using var backend = HttpTestBackend.Text("old");
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);
        await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        var (status, head, body) = await ReadResponseAsync(reader);
        Assert.Equal((200, "old"), (status, body));
        Assert.Equal("close", SocketReader.HeaderOf(head, "connection"));
        Assert.Empty(await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task Http10Client_GetsAChunkedResponseDechunked_UntilClose()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n");
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);
        await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        var head = await reader.ReadHeadAsync();
        Assert.Null(SocketReader.HeaderOf(head!, "transfer-encoding"));
        Assert.Equal("close", SocketReader.HeaderOf(head!, "connection"));
        Assert.Equal("hello, world", Encoding.ASCII.GetString(await reader.ReadToEndAsync()));

        // The upstream connection was read to its end, so it goes back to the pool.
        Assert.Equal(200, (await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).Status);
        Assert.Equal(1, backend.AcceptedCount);
    }

    [Fact]
    public async Task ResponseUntilClose_IsForwardedWhole_AndEndsTheClientConnection()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
            return false;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- service: app", Service("app", string.Empty, backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);
        await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        var head = await reader.ReadHeadAsync();
        Assert.Equal("close", SocketReader.HeaderOf(head!, "connection"));
        Assert.Equal("until the end", Encoding.ASCII.GetString(await reader.ReadToEndAsync()));
    }

    [Fact]
    public async Task AccessLog_RecordsEachRequestAsAJsonLine()
    {
        await using var backend = HttpTestBackend.Text("logged");
        var log = Path.Combine(Path.GetTempPath(), $"forwarder-access-{Guid.NewGuid():N}.log");
        try
        {
            await using (var forwarder = await RunningForwarder.StartAsync(Config(Engine, "- { name: main, service: app }", Service("app", string.Empty, backend), $"accessLog: {log}")))
            {
                Assert.Equal(200, (await ExchangeAsync(forwarder.EndPoint("web"), "GET /x?y=1 HTTP/1.1\r\nHost: logged.test\r\n\r\n")).Status);
                Assert.Equal(400, (await ExchangeAsync(forwarder.EndPoint("web"), "GET /x HTTP/1.1\r\nHost: logged.test\r\nContent-Length: 99999999999999999999\r\n\r\n")).Status);
                await Eventually.TrueAsync(() => File.Exists(log) && File.ReadAllLines(log).Length == 2, "both requests logged");
            }

            // Each entry is written once its exchange is over, so the two may land in either order.
            var lines = File.ReadAllLines(log).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).OrderByDescending(e => e.GetProperty("status").GetInt32() == 200).ToArray();
            Assert.Equal("main", lines[0].GetProperty("route").GetString());
            Assert.Equal("app", lines[0].GetProperty("service").GetString());
            Assert.Equal(backend.Address, lines[0].GetProperty("endpoint").GetString());
            Assert.Equal("GET", lines[0].GetProperty("method").GetString());
            Assert.Equal("/x?y=1", lines[0].GetProperty("target").GetString());
            Assert.Equal("logged.test", lines[0].GetProperty("host").GetString());
            Assert.Equal(200, lines[0].GetProperty("status").GetInt32());
            Assert.True(lines[0].GetProperty("upstreamMs").GetDouble() >= 0);
            Assert.Equal(400, lines[1].GetProperty("status").GetInt32());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, lines[1].GetProperty("route").ValueKind);
        }
        finally
        {
            File.Delete(log);
        }
    }

    private static string Config(string engine, string routes, string services, string http = "") => Http1ProxyTests.Config(routes, services, http, engine);
}
