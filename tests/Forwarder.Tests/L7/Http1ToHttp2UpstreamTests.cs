using System.Text;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// HTTP/1.1 clients (raw sockets) of a service whose only upstream speaks HTTP/2 alone (an
/// h2c Kestrel server): requests go as HTTP/2, bodies de-chunked, responses come back as
/// HTTP/1.1 with the framing the client can read, and the connection stays usable.
/// </summary>
public sealed class Http1ToHttp2UpstreamTests
{
    [Fact]
    public async Task Requests_GoAsHttp2_AndResponsesComeBackFramedForHttp11_OnAKeptAliveConnection()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            context.Response.Headers["X-Protocol"] = context.Request.Protocol;
            context.Response.Headers["X-Seen-Forwarded-For"] = context.Request.Headers["X-Forwarded-For"].ToString();
            context.Response.Headers["X-Seen-Host"] = context.Request.Host.Value;
            if (context.Request.Path == "/streamed")
            {
                // No length: the client must get it chunked.
                await context.Response.WriteAsync("part one,");
                await context.Response.Body.FlushAsync();
                await context.Response.WriteAsync("part two");
                return;
            }

            context.Response.ContentLength = 5;
            await context.Response.WriteAsync("fixed");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service(backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "GET /fixed HTTP/1.1\r\nHost: app.test\r\n\r\n");
        var (status, head, body) = await ReadResponseAsync(reader);
        Assert.Equal(200, status);
        Assert.Equal("fixed", body);
        Assert.Equal("5", SocketReader.HeaderOf(head, "content-length"));
        Assert.Equal("HTTP/2", SocketReader.HeaderOf(head, "x-protocol"));
        Assert.Equal("127.0.0.1", SocketReader.HeaderOf(head, "x-seen-forwarded-for"));
        Assert.Equal("app.test", SocketReader.HeaderOf(head, "x-seen-host"));

        await HttpTestBackend.SendAsync(socket, "GET /streamed HTTP/1.1\r\nHost: app.test\r\n\r\n");
        (status, head, body) = await ReadResponseAsync(reader);
        Assert.Equal(200, status);
        Assert.Equal("chunked", SocketReader.HeaderOf(head, "transfer-encoding"));
        Assert.Equal("part one,part two", body);
    }

    [Fact]
    public async Task AChunkedBodyWithExpectContinue_ArrivesWhole_AfterA100()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            using var read = new MemoryStream();
            await context.Request.Body.CopyToAsync(read);
            await context.Response.WriteAsync($"{context.Request.Method} got {read.Length} bytes: {Encoding.UTF8.GetString(read.ToArray())}");
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service(backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 100", await reader.ReadHeadAsync(), StringComparison.Ordinal);
        await HttpTestBackend.SendAsync(socket, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        var (status, _, body) = await ReadResponseAsync(reader);
        Assert.Equal(200, status);
        Assert.Equal("POST got 11 bytes: hello world", body);

        // The connection is still in step: a second request with a Content-Length body.
        await HttpTestBackend.SendAsync(socket, "PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
        Assert.Equal("PUT got 3 bytes: abc", (await ReadResponseAsync(reader)).Body);
    }

    [Fact]
    public async Task AnHttp10Client_GetsTheBodyEndedByTheClose()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("no length here"));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service(backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        await HttpTestBackend.SendAsync(socket, "GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        var head = await reader.ReadHeadAsync();
        Assert.StartsWith("HTTP/1.1 200", head, StringComparison.Ordinal);
        Assert.Null(SocketReader.HeaderOf(head!, "transfer-encoding"));
        Assert.Equal("close", SocketReader.HeaderOf(head!, "connection"));
        Assert.Equal("no length here", Encoding.UTF8.GetString(await reader.ReadToEndAsync()));
    }

    [Fact]
    public async Task AnUpstreamThatAnswersBeforeTheBody_ClosesTheClientConnection_AndHangsNothing()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return Task.CompletedTask;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service(backend)));
        using var socket = await SocketClient.ConnectAsync(forwarder.EndPoint("web"));
        var reader = new SocketReader(socket);

        // Announces a megabyte and sends only part of it: the rest will never come.
        await HttpTestBackend.SendAsync(socket, "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n" + new string('x', 1000));
        var (status, _, _) = await ReadResponseAsync(reader);
        Assert.Equal(413, status);
        Assert.Empty(await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task AnUnreachableEndpoint_IsSkipped_ForTheNext()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context => context.Response.WriteAsync("second one"));
        var services = $"h2:\n  http: {{ version: \"2\" }}\n  connectAttempts: 2\n  lb: {{ policy: round_robin }}\n  endpoints:\n    - address: 127.0.0.1:1\n    - address: 127.0.0.1:{backend.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", services));

        for (var i = 0; i < 4; i++)
        {
            var (status, _, body) = await ExchangeAsync(forwarder.EndPoint("web"), "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            Assert.Equal(200, status);
            Assert.Equal("second one", body);
        }

        // The refused dials are counted as on every other path.
        Assert.True(forwarder.Metrics.Service("h2").ConnectErrors(Forwarder.Metrics.ConnectFailure.Refused) >= 1, "the refused endpoint's dials are counted");
    }

    [Fact]
    public async Task StalledBody_Gets408AfterTheBodyTimeout_AndNeverCountsAgainstTheEndpoint()
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            using var read = new MemoryStream();
            await context.Request.Body.CopyToAsync(read);
            await context.Response.WriteAsync($"got {read.Length}");
        });
        var services = $"h2:\n  http: {{ version: \"2\" }}\n  outlierDetection: {{ consecutiveFailures: 2, baseEjectionTime: 60s, maxEjectionPercent: 100 }}\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: h2, timeout: 20s, retries: { attempts: 0 } }", services, "bodyTimeout: 1s"));
        var web = forwarder.EndPoint("web");

        // Each announces ten bytes, sends three and pauses: the client's fault, after bodyTimeout, not the route's timeout.
        var started = DateTime.UtcNow;
        var stalled = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ExchangeAsync(web, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")));
        Assert.All(stalled, response => Assert.Equal(408, response.Status));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15), "answered after the body timeout, well before the route's");

        // The endpoint was never charged: not ejected, and it serves on.
        var endpoint = Assert.Single(forwarder.Runtime.Services["h2"].Endpoints);
        Assert.Equal(0, endpoint.Health.Ejections);
        var (status, _, body) = await ExchangeAsync(web, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz");
        Assert.Equal((200, "got 3"), (status, body));
        Assert.Equal(4, forwarder.Metrics.Route("web", "route-0").Responses(3));
    }

    private static string Http2Service(KestrelTestBackend backend) => $"h2:\n  http: {{ version: \"2\" }}\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}";
}
