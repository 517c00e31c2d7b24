using System.Net;
using System.Text;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// HTTP/2 clients with prior knowledge (h2c) on an http listener: forwarded to HTTP/1.1
/// upstreams, and to HTTP/2 upstreams with gRPC's needs kept (trailers, both directions
/// streaming at once).
/// </summary>
public sealed class Http2ProxyTests
{
    [Fact]
    public async Task H2cClient_ReachesAnHttp11Upstream_WithForwardingHeaders()
    {
        await using var backend = HttpTestBackend.Text("from http/1.1");
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { match: { path: { prefix: /api } }, service: app }", Service("app", string.Empty, backend)));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");

        using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{web.Port}/api/items?x=1"));
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("from http/1.1", await response.Content.ReadAsStringAsync());

        var seen = Assert.Single(backend.Requests);
        Assert.Equal("GET /api/items?x=1 HTTP/1.1", seen.RequestLine);
        Assert.Equal("127.0.0.1", seen.Header("x-forwarded-for"));
        Assert.Equal("http", seen.Header("x-forwarded-proto"));
        Assert.Equal($"127.0.0.1:{web.Port}", seen.Header("host"));

        // Unrouted over HTTP/2 too: 404 and no upstream sees it.
        using var missing = await client.GetAsync(new Uri($"http://127.0.0.1:{web.Port}/other"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Single(backend.Requests);

        // The same listener still speaks HTTP/1.1.
        Assert.Equal("from http/1.1", (await ExchangeAsync(web, "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")).Body);
    }

    [Theory]
    [InlineData("native")]
    [InlineData("kestrel")]
    public async Task GrpcLikeStreams_FlowBothWaysAtOnce_AndTrailersArrive(string engine)
    {
        await using var backend = await KestrelTestBackend.StartHttp2Async(async context =>
        {
            // Echoes each line back as it arrives, then ends with gRPC-style trailers.
            context.Response.ContentType = "application/grpc";
            context.Response.DeclareTrailer("grpc-status");
            await context.Response.StartAsync();

            // Kestrel sends an HTTP/2 response's head with the first flush, not at StartAsync.
            await context.Response.Body.FlushAsync();
            var reader = new StreamReader(context.Request.Body);
            while (await reader.ReadLineAsync() is { } line)
            {
                await context.Response.WriteAsync($"echo:{line}\n");
                await context.Response.Body.FlushAsync();
            }

            context.Response.AppendTrailer("grpc-status", "0");
            context.Response.AppendTrailer("grpc-message", "done");
        });
        var services = $"grpc:\n  http: {{ version: \"2\" }}\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: grpc", services, http: "http2: " + engine));
        using var client = H2cClient();

        var requestBody = new DuplexContent();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://127.0.0.1:{forwarder.EndPoint("web").Port}/echo.Echo/Stream"))
        {
            Content = requestBody,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TE.ParseAdd("trailers");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var responseBody = new StreamReader(await response.Content.ReadAsStreamAsync());

        // Each message goes through and comes back before the next is sent: true duplex.
        foreach (var message in new[] { "one", "two", "three" })
        {
            await requestBody.WriteLineAsync(message);
            Assert.Equal($"echo:{message}", await responseBody.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        }

        requestBody.Complete();
        Assert.Null(await responseBody.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("0", Assert.Single(response.TrailingHeaders.GetValues("grpc-status")));
        Assert.Equal("done", Assert.Single(response.TrailingHeaders.GetValues("grpc-message")));
    }

    /// <summary>A request body the test writes line by line while the response is being read.</summary>
    private sealed class DuplexContent : HttpContent
    {
        private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task WriteLineAsync(string line)
        {
            var stream = await _stream.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"));
            await stream.FlushAsync();
        }

        public void Complete() => _completed.TrySetResult();

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            // As gRPC clients do: the request's headers go out now, before its first message.
            await stream.FlushAsync();
            _stream.TrySetResult(stream);
            await _completed.Task;
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
