using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class Http1RequestParserTests
{
    private readonly Http1RequestHead _head = new();

    private (Http1ParseStatus Status, long Consumed, Http1Error Error) Parse(string text, Http1Limits? limits = null)
        => Parse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text)), limits);

    private (Http1ParseStatus Status, long Consumed, Http1Error Error) Parse(ReadOnlySequence<byte> buffer, Http1Limits? limits = null)
    {
        var status = Http1RequestParser.TryParse(buffer, limits ?? Http1Limits.Default, _head, out var consumed, out var error);
        return (status, buffer.Slice(buffer.Start, consumed).Length, error);
    }

    private static string Text(ReadOnlySpan<byte> value) => Encoding.Latin1.GetString(value);

    [Fact]
    public void TryParse_SimpleGet_ReadsEveryPartAndLeavesTheBody()
    {
        const string head = "GET /items/42?color=red&x=1 HTTP/1.1\r\nHost: shop.example:8080\r\nX-Trace:  abc \t\r\nAccept: */*\r\n\r\n";

        var (status, consumed, _) = Parse(head + "NEXT");

        Assert.Equal(Http1ParseStatus.Complete, status);
        Assert.Equal(head.Length, consumed);
        Assert.Equal("GET", Text(_head.Method));
        Assert.Equal("/items/42?color=red&x=1", Text(_head.Target));
        Assert.Equal("/items/42", Text(_head.Path));
        Assert.Equal("color=red&x=1", Text(_head.Query));
        Assert.Equal("shop.example:8080", Text(_head.Host));
        Assert.Equal(Http1Version.Http11, _head.Version);
        Assert.True(_head.KeepAlive);
        Assert.False(_head.HasBody);
        Assert.Equal(3, _head.HeaderCount);
        Assert.Equal("abc", Text(_head["x-trace"u8]));
        Assert.Equal(("Accept", "*/*"), (Text(_head.HeaderName(2)), Text(_head.HeaderValue(2))));
    }

    [Fact]
    public void TryParse_ArrivingByteByByteAcrossSegments_NeedsMoreUntilTheEmptyLine()
    {
        var bytes = Encoding.ASCII.GetBytes("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
        var headLength = bytes.Length - 11;

        for (var available = 1; available < headLength; available++)
        {
            Assert.Equal(Http1ParseStatus.NeedMore, Parse(TestSequences.Chunks(bytes.AsSpan(0, available).ToArray(), 3)).Status);
        }

        var (status, consumed, _) = Parse(TestSequences.Chunks(bytes, 3));
        Assert.Equal(Http1ParseStatus.Complete, status);
        Assert.Equal(headLength, consumed);
        Assert.Equal(11, _head.ContentLength);
        Assert.True(_head.HasBody);
    }

    [Fact]
    public void TryParse_AbsoluteFormTarget_TakesTheAuthorityFromTheTarget()
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse("GET http://api.internal:81/v1/users?id=7 HTTP/1.1\r\nHost: ignored\r\n\r\n").Status);

        Assert.Equal("api.internal:81", Text(_head.Host));
        Assert.Equal("/v1/users", Text(_head.Path));
        Assert.Equal("id=7", Text(_head.Query));
    }

    [Fact]
    public void TryParse_AbsoluteFormWithoutPath_HasAnEmptyPath()
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse("GET https://api.internal HTTP/1.1\r\nHost: x\r\n\r\n").Status);

        Assert.Equal("api.internal", Text(_head.Host));
        Assert.Equal(string.Empty, Text(_head.Path));
    }

    [Fact]
    public void TryParse_OptionsAsterisk_IsAccepted()
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").Status);

        Assert.Equal("*", Text(_head.Path));
        Assert.Equal("OPTIONS", Text(_head.Method));
    }

    [Theory]
    [InlineData("GET / HTTP/1.0\r\n\r\n", false)]
    [InlineData("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, TE\r\n\r\n", true)]
    public void TryParse_ConnectionPersistence_FollowsVersionAndHeader(string request, bool keepAlive)
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse(request).Status);

        Assert.Equal(keepAlive, _head.KeepAlive);
    }

    [Fact]
    public void TryParse_UpgradeAndExpect_AreNoted()
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nExpect: 100-Continue\r\n\r\n").Status);

        Assert.True(_head.Upgrade);
        Assert.True(_head.ExpectContinue);
    }

    [Theory]
    [InlineData("Content-Length: 5, 5", 5L, false)]
    [InlineData("Content-Length: 0", 0L, false)]
    [InlineData("Transfer-Encoding: chunked", null, true)]
    [InlineData("Transfer-Encoding: gzip, Chunked", null, true)]
    public void TryParse_Framing_IsReadStrictly(string header, long? contentLength, bool chunked)
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse($"POST / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n").Status);

        Assert.Equal(contentLength, _head.ContentLength);
        Assert.Equal(chunked, _head.Chunked);
    }

    [Fact]
    public void TryParse_LeadingEmptyLine_IsSkipped()
    {
        var (status, consumed, _) = Parse("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");

        Assert.Equal(Http1ParseStatus.Complete, status);
        Assert.Equal(29, consumed);
        Assert.Equal("GET", Text(_head.Method));
    }

    [Fact]
    public void TryParse_ObsTextInAValue_IsAccepted()
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u00e9\r\n\r\n").Status);

        Assert.Equal("caf\u00e9", Text(_head["X-Name"u8]));
    }

    // Each of these is a request-smuggling or ambiguity shape: two servers could frame it differently.
    [Theory]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length and Transfer-Encoding")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "both Content-Length and Transfer-Encoding")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "conflicting Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400, "conflicting Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "invalid Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, "invalid Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400, "invalid Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, "invalid Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, "invalid Content-Length")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "must end with chunked")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "chunked applied twice")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, "must end with chunked")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400, "invalid Transfer-Encoding")]
    [InlineData("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding in an HTTP/1.0 request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400, "obs-fold")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400, "whitespace between a header name and its colon")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad\r\n\r\n", 400, "malformed header field name")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\nb\r\n\r\n", 400, "bare LF")]
    [InlineData("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\n", 400, "bare LF")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\rb\r\n\r\n", 400, "control character")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\0b\r\n\r\n", 400, "control character")]
    [InlineData("GET / HTTP/1.1\r\n\r\n", 400, "missing Host")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host")]
    [InlineData("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad version")]
    [InlineData("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line")]
    [InlineData("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad method")]
    [InlineData("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version not supported")]
    [InlineData("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400, "bad version")]
    [InlineData("GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment")]
    [InlineData("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "only a target for OPTIONS")]
    [InlineData("GET http://user@host/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "no userinfo")]
    [InlineData("GET ftp://host/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "absolute http(s) URL")]
    [InlineData("CONNECT internal:22 HTTP/1.1\r\nHost: internal:22\r\n\r\n", 405, "CONNECT")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, "100-continue")]
    [InlineData("\n\n", 400, "bare LF")]
    public void TryParse_AmbiguousOrMalformed_IsRefused(string request, int status, string reason)
    {
        var result = Parse(request);

        Assert.Equal(Http1ParseStatus.Error, result.Status);
        Assert.Equal(status, result.Error.Status);
        Assert.Contains(reason, result.Error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a:80@evil.com")]
    [InlineData("evil.com#.x")]
    [InlineData("evil.com/x")]
    [InlineData("a b")]
    [InlineData("a:8o")]
    [InlineData("a:80:80")]
    [InlineData(":80")]
    [InlineData("a%2")]
    [InlineData("[::1")]
    [InlineData("[zz::1]")]
    [InlineData("a\\b")]
    [InlineData("a:1234567")]
    public void TryParse_HostThatIsNotHostPort_IsRefused(string host)
    {
        var result = Parse($"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");

        Assert.Equal(Http1ParseStatus.Error, result.Status);
        Assert.Equal(400, result.Error.Status);
        Assert.Contains("host[:port]", result.Error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("example.com")]
    [InlineData("Example.COM:8080")]
    [InlineData("127.0.0.1:80")]
    [InlineData("[::1]:8443")]
    [InlineData("[::ffff:10.0.0.1]")]
    [InlineData("under_score.example")]
    [InlineData("a%41b")]
    [InlineData("a:")]
    public void TryParse_ValidHost_IsAccepted(string host)
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse($"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").Status);
        Assert.Equal(host, Text(_head.Host));
    }

    [Fact]
    public void TryParse_AbsoluteFormAuthorityThatIsNotHostPort_IsRefused()
        => Assert.Equal(400, Parse("GET http://a!b%zz/ HTTP/1.1\r\nHost: a\r\n\r\n").Error.Status);

    [Theory]
    [InlineData("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n", false)]
    [InlineData("Connection: upgrade\r\nUpgrade: websocket, h2c\r\n", false)]
    [InlineData("Connection: upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n", false)]
    [InlineData("Connection: upgrade\r\nUpgrade: TLS/1.2\r\n", false)]
    [InlineData("Upgrade: websocket\r\n", false)]
    [InlineData("Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n", true)]
    public void TryParse_Upgrade_IsOnlyEverWebSocket(string fields, bool upgrade)
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse($"GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n").Status);
        Assert.Equal(upgrade, _head.Upgrade);
    }

    [Fact]
    public void TryParse_RequestLineOverTheLimit_Is414EvenBeforeItEnds()
    {
        var limits = new Http1Limits(MaxRequestLine: 64);
        var line = "GET /" + new string('a', 100);

        Assert.Equal(414, Parse(line, limits).Error.Status);
        Assert.Equal(414, Parse(line + " HTTP/1.1\r\nHost: a\r\n\r\n", limits).Error.Status);
        Assert.Equal(Http1ParseStatus.NeedMore, Parse("GET /" + new string('a', 50), limits).Status);
    }

    [Fact]
    public void TryParse_HeadOverTheLimit_Is431()
    {
        var limits = new Http1Limits(MaxHeadBytes: 256);
        var big = "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + new string('c', 300);

        Assert.Equal(431, Parse(big, limits).Error.Status);
        Assert.Equal(431, Parse(big + "\r\n\r\n", limits).Error.Status);
    }

    [Fact]
    public void TryParse_TooManyHeaders_Is431()
    {
        var request = new StringBuilder("GET / HTTP/1.1\r\nHost: a\r\n");
        for (var i = 0; i < 10; i++)
        {
            request.Append($"X-{i}: {i}\r\n");
        }

        var result = Parse(request.Append("\r\n").ToString(), new Http1Limits(MaxHeaders: 10));

        Assert.Equal(431, result.Error.Status);
    }

    [Fact]
    public void TryParse_ReusedHead_ForgetsThePreviousRequest()
    {
        Parse("POST /a?x=1 HTTP/1.1\r\nHost: one\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");

        Assert.Equal(Http1ParseStatus.Complete, Parse("GET /b HTTP/1.1\r\nHost: two\r\n\r\n").Status);

        Assert.Equal("two", Text(_head.Host));
        Assert.Null(_head.ContentLength);
        Assert.True(_head.KeepAlive);
        Assert.Equal(1, _head.HeaderCount);
        Assert.Equal(string.Empty, Text(_head.Query));
    }

    [Fact]
    public void TryParse_SteadyState_DoesNotAllocate()
    {
        var buffer = new ReadOnlySequence<byte>("GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"u8.ToArray());
        Http1RequestParser.TryParse(buffer, Http1Limits.Default, _head, out _, out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            Http1RequestParser.TryParse(buffer, Http1Limits.Default, _head, out _, out _);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
