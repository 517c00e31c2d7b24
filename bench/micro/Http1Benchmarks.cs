using System.Buffers;
using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;

namespace Forwarder.Bench.Micro;

/// <summary>
/// The L7 hot path's HTTP/1.1 codec, one message per operation, on single-segment buffers (a head
/// that arrived in one read): parsing request and response heads, writing the heads the upstream
/// and the client receive, walking a chunked body, and picking a route. The heads, the writers'
/// buffer and the chunked reader are reused as a connection reuses them, so every operation
/// should allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class Http1Benchmarks
{
    /// <summary>A browser's GET of a script: 8 fields, 394 bytes.</summary>
    private static readonly byte[] BrowserRequest = Encoding.ASCII.GetBytes(
        "GET /static/js/app.3f2a1c.js?v=12 HTTP/1.1\r\n" +
        "Host: www.example.com\r\n" +
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n" +
        "Accept: */*\r\n" +
        "Accept-Language: en-US,en;q=0.9\r\n" +
        "Accept-Encoding: gzip, deflate, br\r\n" +
        "Referer: https://www.example.com/index.html\r\n" +
        "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n" +
        "Connection: keep-alive\r\n" +
        "\r\n");

    /// <summary>What wrk sends: the request line and Host.</summary>
    private static readonly byte[] WrkRequest = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");

    /// <summary>An nginx-like 200 with 8 fields.</summary>
    private static readonly byte[] Response = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\n" +
        "Server: nginx/1.22.1\r\n" +
        "Date: Sun, 22 Nov 2026 10:00:00 GMT\r\n" +
        "Content-Type: application/javascript; charset=utf-8\r\n" +
        "Content-Length: 48213\r\n" +
        "Last-Modified: Fri, 20 Nov 2026 08:30:00 GMT\r\n" +
        "Connection: keep-alive\r\n" +
        "ETag: \"6571f0a8-bc55\"\r\n" +
        "Cache-Control: public, max-age=31536000\r\n" +
        "\r\n");

    private readonly Http1RequestHead _requestHead = new();
    private readonly Http1ResponseHead _responseHead = new();
    private readonly Http1RequestHead _parsedRequest = new();
    private readonly Http1ResponseHead _parsedResponse = new();
    private readonly ChunkedBodyReader _chunked = new();
    private readonly ArrayBufferWriter<byte> _output = new(4096);
    private readonly ForwardingContext _context = new(IPAddress.Parse("192.0.2.10"), "http", new RequestId("0HNA1B2C3D4E5", 42));
    private ReadOnlySequence<byte> _browserRequest;
    private ReadOnlySequence<byte> _wrkRequest;
    private ReadOnlySequence<byte> _response;
    private ReadOnlySequence<byte> _chunkedBody;
    private RouteTable<Route> _routes = null!;

    [GlobalSetup]
    public void Setup()
    {
        _browserRequest = new ReadOnlySequence<byte>(BrowserRequest);
        _wrkRequest = new ReadOnlySequence<byte>(WrkRequest);
        _response = new ReadOnlySequence<byte>(Response);

        // 16 KiB of data in 1 KiB chunks, then the last chunk and no trailers.
        var body = new List<byte>();
        for (var i = 0; i < 16; i++)
        {
            body.AddRange("400\r\n"u8.ToArray());
            body.AddRange(Enumerable.Repeat((byte)'x', 1024));
            body.AddRange("\r\n"u8.ToArray());
        }

        body.AddRange("0\r\n\r\n"u8.ToArray());
        _chunkedBody = new ReadOnlySequence<byte>(body.ToArray());

        // The writers and the route table read parsed heads, as the proxy session hands them over.
        Require(Http1RequestParser.TryParse(_browserRequest, Http1Limits.Default, _parsedRequest, out _, out _) == Http1ParseStatus.Complete, "browser request");
        Require(Http1RequestParser.TryParse(_wrkRequest, Http1Limits.Default, _requestHead, out _, out _) == Http1ParseStatus.Complete, "wrk request");
        Require(Http1ResponseParser.TryParse(_response, Http1Limits.Default, headRequest: false, _parsedResponse, out _, out _) == Http1ParseStatus.Complete, "response");
        Require(ChunkedBody() == (int)Http1ParseStatus.Complete && _chunked.DataBytes == 16 * 1024, "chunked body");

        // Ten routes, in configured order; only the last takes the request. On the way the request
        // fails a host, an exact path, method lists, path prefixes and a header condition.
        static RouteMatch On(string? host, PathMatchKind kind, string path, string[]? methods = null, HeaderMatch? header = null)
            => new(host, new PathMatch(kind, path), methods ?? [], header is null ? [] : [header]);
        Route[] routes =
        [
            new("api-v1", On("api.example.com", PathMatchKind.Prefix, "/v1")),
            new("api-v2", On("api.example.com", PathMatchKind.Prefix, "/v2")),
            new("internal", On("*.internal.example.com", PathMatchKind.Prefix, "/")),
            new("health", On("www.example.com", PathMatchKind.Exact, "/healthz")),
            new("admin", On("www.example.com", PathMatchKind.Prefix, "/admin", ["GET", "POST"])),
            new("api-canary", On("www.example.com", PathMatchKind.Prefix, "/api", header: new HeaderMatch("x-canary", "1"))),
            new("login", On("www.example.com", PathMatchKind.Prefix, "/login", ["POST"])),
            new("images", On("www.example.com", PathMatchKind.Prefix, "/images")),
            new("static-canary", On("www.example.com", PathMatchKind.Prefix, "/static", header: new HeaderMatch("x-canary", null))),
            new("static", On("www.example.com", PathMatchKind.Prefix, "/static")),
        ];
        _routes = new RouteTable<Route>(routes, r => r.Match);
        Require(_routes.Match(_parsedRequest) == routes[^1], "route");
    }

    [Benchmark]
    public int ParseBrowserRequest()
        => (int)Http1RequestParser.TryParse(_browserRequest, Http1Limits.Default, _requestHead, out _, out _) + _requestHead.HeaderCount;

    [Benchmark]
    public int ParseWrkRequest()
        => (int)Http1RequestParser.TryParse(_wrkRequest, Http1Limits.Default, _requestHead, out _, out _) + _requestHead.HeaderCount;

    [Benchmark]
    public int ParseResponse()
        => (int)Http1ResponseParser.TryParse(_response, Http1Limits.Default, headRequest: false, _responseHead, out _, out _) + _responseHead.HeaderCount;

    /// <summary>The browser request's head as the upstream receives it (hop-by-hop fields out, X-Forwarded-*, Via and X-Request-Id in).</summary>
    [Benchmark]
    public int WriteRequest()
    {
        _output.ResetWrittenCount();
        Http1RequestWriter.Write(_output, _parsedRequest, _context);
        return _output.WrittenCount;
    }

    /// <summary>The response's head as the client receives it, the connection kept open, no cookie.</summary>
    [Benchmark]
    public int WriteResponse()
    {
        _output.ResetWrittenCount();
        Http1ResponseWriter.Write(_output, _parsedResponse, closeAfter: false, setCookie: null);
        return _output.WrittenCount;
    }

    /// <summary>Validating a 16 KiB chunked body (16 chunks of 1 KiB) that is all in the buffer.</summary>
    [Benchmark]
    public int ChunkedBody()
    {
        _chunked.Reset();
        return (int)_chunked.Advance(_chunkedBody, out _, out _);
    }

    /// <summary>The browser request against ten routes, taken by the last.</summary>
    [Benchmark]
    public object? RouteMatchLast() => _routes.Match(_parsedRequest);

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"benchmark setup: {what} did not parse or match as expected");
        }
    }

    private sealed record Route(string Name, RouteMatch Match);
}
