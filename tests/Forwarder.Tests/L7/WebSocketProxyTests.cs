using System.Net;
using System.Net.WebSockets;
using System.Text;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// WebSockets through an http listener with .NET's own client and an ASP.NET Core echo server:
/// over HTTP/1.1 (the upgrade tunnelled) and over HTTP/2 with extended CONNECT (RFC 8441),
/// which goes upstream as an HTTP/1.1 upgrade; an upstream's refusal reaches the client, and a
/// 101 that is not the answer to the handshake never does.
/// </summary>
public sealed class WebSocketProxyTests
{
    [Theory]
    [InlineData("1.1")]
    [InlineData("2")]
    public async Task Messages_GoBothWays_WithTheSubprotocol_AndTheSessionClosesCleanly(string version)
    {
        await using var backend = await StartEchoServerAsync();
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /chat } }, service: chat }", $"chat:\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}"));
        using var socket = await ConnectAsync(forwarder, version, "/chat?room=1");

        Assert.Equal("chat.v1", socket.SubProtocol);
        foreach (var message in new[] { "hello", new string('x', 100_000), "bye" })
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(message), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            Assert.Equal($"echo:{message}", await ReceiveTextAsync(socket));
        }

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(WebSocketState.Closed, socket.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, socket.CloseStatus);

        var seen = Assert.Single(backend.Upgrades);
        Assert.Equal("/chat?room=1", seen.Target);
        Assert.Equal("127.0.0.1", seen.ForwardedFor);
        Assert.Equal(version == "2" ? "2 forwarder" : "1.1 forwarder", seen.Via);
    }

    [Fact]
    public async Task AnUpstreamRefusal_ReachesAnHttp2Client()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, HttpTestBackend.Response(403, "no sockets for you"));
            return true;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: chat", Service("chat", string.Empty, backend)));

        var error = await Assert.ThrowsAsync<WebSocketException>(() => ConnectAsync(forwarder, "2", "/chat"));
        Assert.Contains("403", error.Message, StringComparison.Ordinal);
        Assert.Equal("websocket", Assert.Single(backend.Requests).Header("upgrade"));
    }

    [Fact]
    public async Task A101ThatDoesNotAnswerTheKey_IsA502_ForAnHttp2Client()
    {
        await using var backend = new HttpTestBackend(async (_, socket) =>
        {
            await HttpTestBackend.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: bm90IHRoZSBhbnN3ZXI=\r\n\r\nstray bytes");
            return false;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: chat", Service("chat", string.Empty, backend)));

        var error = await Assert.ThrowsAsync<WebSocketException>(() => ConnectAsync(forwarder, "2", "/chat"));
        Assert.Contains("502", error.Message, StringComparison.Ordinal);
    }

    private static async Task<ClientWebSocket> ConnectAsync(RunningForwarder forwarder, string version, string target)
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("chat.v1");
        socket.Options.HttpVersion = version == "2" ? HttpVersion.Version20 : HttpVersion.Version11;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using var invoker = new HttpMessageInvoker(new SocketsHttpHandler { UseProxy = false });
        try
        {
            await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{forwarder.EndPoint("web").Port}{target}"), invoker, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<string> ReceiveTextAsync(WebSocket socket)
    {
        using var message = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return Encoding.UTF8.GetString(message.ToArray());
            }
        }
    }

    /// <summary>An HTTP/1.1 WebSocket server that echoes every text message with an "echo:" prefix.</summary>
    private static async Task<EchoServer> StartEchoServerAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http1));
        var app = builder.Build();
        var server = new EchoServer(app);
        app.UseWebSockets();
        app.Run(async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            server.Record(new Upgrade($"{context.Request.Path}{context.Request.QueryString}", context.Request.Headers["X-Forwarded-For"].ToString(), context.Request.Headers.Via.ToString()));
            using var socket = await context.WebSockets.AcceptWebSocketAsync(context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault());
            while (true)
            {
                var text = await ReceiveTextOrCloseAsync(socket);
                if (text is null)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                    return;
                }

                await socket.SendAsync(Encoding.UTF8.GetBytes($"echo:{text}"), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            }
        });
        await app.StartAsync();
        server.Port = new Uri(app.Urls.Single()).Port;
        return server;
    }

    private static async Task<string?> ReceiveTextOrCloseAsync(WebSocket socket)
    {
        using var message = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return Encoding.UTF8.GetString(message.ToArray());
            }
        }
    }

    private sealed record Upgrade(string Target, string ForwardedFor, string Via);

    private sealed class EchoServer(WebApplication app) : IAsyncDisposable
    {
        private readonly List<Upgrade> _upgrades = [];

        public int Port { get; set; }

        public IReadOnlyList<Upgrade> Upgrades
        {
            get
            {
                lock (_upgrades)
                {
                    return [.. _upgrades];
                }
            }
        }

        public void Record(Upgrade upgrade)
        {
            lock (_upgrades)
            {
                _upgrades.Add(upgrade);
            }
        }

        public ValueTask DisposeAsync() => app.DisposeAsync();
    }
}
