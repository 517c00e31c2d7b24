using System.Diagnostics;
using System.Net;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// gRPC through the HTTP/2 front, with a real gRPC client (Debian's python3-grpcio): an
/// upstream's Trailers-Only error keeps its status and message, the proxy's own errors are gRPC
/// errors, and a slowly trickling client stream is not cut by Kestrel's minimum data rate.
/// </summary>
public sealed class GrpcProxyTests
{
    /// <summary>One unary call with an empty message; prints OK or the status code's name and the details.</summary>
    private const string UnaryCall = """
        import grpc, sys
        channel = grpc.insecure_channel(sys.argv[1])
        try:
            channel.unary_unary(sys.argv[2])(b'', timeout=30)
            print('OK')
        except grpc.RpcError as e:
            print(e.code().name + '|' + (e.details() or ''))
        """;

    private static async Task<string> CallAsync(IPEndPoint endPoint, string method)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "-c", UnaryCall, $"127.0.0.1:{endPoint.Port}", method })
        {
            start.ArgumentList.Add(argument);
        }

        // The grpc library must not go through a proxy from the environment.
        start.Environment["no_proxy"] = "*";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(process.ExitCode == 0, await errors);
        return (await output).Trim();
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task UpstreamTrailersOnlyError_ReachesTheClient_WithItsStatusAndMessage(string engine)
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(context =>
        {
            // No body and no trailers: Kestrel ends the stream with these headers (Trailers-Only).
            context.Response.ContentType = "application/grpc";
            context.Response.Headers["grpc-status"] = "5";
            context.Response.Headers["grpc-message"] = "no such widget";
            return Task.CompletedTask;
        });
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /shop.Widgets } }, service: grpc }", Http2Service("grpc", backend.Port), http: "http2: " + engine));

        Assert.Equal("NOT_FOUND|no such widget", await CallAsync(forwarder.EndPoint("web"), "/shop.Widgets/Get"));
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task ProxyErrors_AreGrpcStatuses(string engine)
    {
        var down = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        down.Start();
        var port = ((IPEndPoint)down.LocalEndpoint).Port;
        down.Stop();
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /shop.Widgets } }, service: grpc }", Http2Service("grpc", port), http: "http2: " + engine));
        var web = forwarder.EndPoint("web");

        Assert.Equal("UNIMPLEMENTED|forwarder: 404 Not Found", await CallAsync(web, "/other.Service/Call"));
        Assert.Equal("UNAVAILABLE|forwarder: 503 Service Unavailable", await CallAsync(web, "/shop.Widgets/Get"));
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task ProxyTimeout_IsDeadlineExceeded(string engine)
    {
        var never = new TaskCompletionSource();
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context => await never.Task.WaitAsync(context.RequestAborted));
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: grpc, timeout: 500ms }", Http2Service("grpc", backend.Port), http: "http2: " + engine));
        try
        {
            Assert.Equal("DEADLINE_EXCEEDED|forwarder: 504 Gateway Timeout", await CallAsync(forwarder.EndPoint("web"), "/shop.Widgets/Get"));
        }
        finally
        {
            never.TrySetResult();
        }
    }

    [Fact]
    public async Task SlowClientStream_TenBytesASecondForSevenSeconds_GoesThrough()
    {
        await using var backend = HttpTestBackend.Text("received");
        // The route's timeout (for the response head, which waits for the whole body here) is well
        // past the trickle's 7 s: the point is the data rate, and a loaded machine stretches the pace.
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: app, timeout: 60s }", Service("app", string.Empty, backend)));
        using var client = H2cClient();

        using var response = await client.PostAsync(At(forwarder.EndPoint("web"), "/upload"), new TrickleContent(chunks: 7, size: 10, every: TimeSpan.FromSeconds(1)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(70, Assert.Single(backend.Requests).Body.Length);
    }

    /// <summary>A body sent as a client stream that trickles: <paramref name="size"/> bytes every <paramref name="every"/>, with no length.</summary>
    private sealed class TrickleContent(int chunks, int size, TimeSpan every) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var i = 0; i < chunks; i++)
            {
                await stream.WriteAsync(new byte[size]);
                await stream.FlushAsync();

                // The pace is the point of the test (a data rate), not a wait for something to happen.
                await Task.Delay(every);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
