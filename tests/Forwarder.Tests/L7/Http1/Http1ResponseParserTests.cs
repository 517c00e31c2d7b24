using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

public sealed class Http1ResponseParserTests
{
    private readonly Http1ResponseHead _head = new();

    private (Http1ParseStatus Status, long Consumed, Http1Error Error) Parse(string text, bool headRequest = false)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text));
        var status = Http1ResponseParser.TryParse(buffer, Http1Limits.Default, headRequest, _head, out var consumed, out var error);
        return (status, buffer.Slice(buffer.Start, consumed).Length, error);
    }

    [Fact]
    public void TryParse_LengthFramed_ReadsStatusReasonHeadersAndLeavesTheBody()
    {
        const string head = "HTTP/1.1 201 Created Here\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";

        var (status, consumed, _) = Parse(head + "hello");

        Assert.Equal(Http1ParseStatus.Complete, status);
        Assert.Equal(head.Length, consumed);
        Assert.Equal(201, _head.Status);
        Assert.Equal("Created Here", Encoding.ASCII.GetString(_head.Reason));
        Assert.Equal((Http1BodyFraming.Length, 5L), (_head.Framing, _head.ContentLength));
        Assert.True(_head.KeepAlive);
        Assert.Equal(2, _head.HeaderCount);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, "Chunked", true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, "UntilClose", false)]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", false, "UntilClose", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, "None", true)]
    [InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, "None", true)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, "None", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", false, "Length", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false, "Length", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", false, "Length", true)]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, "None", false)]
    [InlineData("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, "Length", true)]
    public void TryParse_Framing_FollowsRfc9112(string response, bool headRequest, string framing, bool keepAlive)
    {
        Assert.Equal(Http1ParseStatus.Complete, Parse(response, headRequest).Status);

        Assert.Equal(Enum.Parse<Http1BodyFraming>(framing), _head.Framing);
        Assert.Equal(keepAlive, _head.KeepAlive);
    }

    [Fact]
    public void TryParse_Interim100_IsMarkedSoTheFinalResponseIsReadNext()
    {
        var (status, consumed, _) = Parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");

        Assert.Equal(Http1ParseStatus.Complete, status);
        Assert.Equal(25, consumed);
        Assert.True(_head.IsInterim);
    }

    [Fact]
    public void TryParse_Incomplete_NeedsMore()
    {
        Assert.Equal(Http1ParseStatus.NeedMore, Parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n").Status);
        Assert.Equal(Http1ParseStatus.NeedMore, Parse("HTTP/1.1 200 OK\r\nX\r").Status);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", "conflicting Content-Length")]
    [InlineData("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 response")]
    [InlineData("HTTP/1.1 200 OK\r\nX-Split: a\nInjected: b\r\n\r\n", "bare LF")]
    [InlineData("HTTP/1.1 200 OK\r\n Folded: b\r\n\r\n", "obs-fold")]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n", "malformed status code")]
    [InlineData("HTTP/1.1 099 Low\r\n\r\n", "malformed status code")]
    [InlineData("HTTP/2 200\r\n\r\n", "HTTP/1.x status line")]
    [InlineData("SSH-2.0-OpenSSH_9.2\r\n\r\n", "HTTP/1.x status line")]
    [InlineData("HTTP/1.1 200 O\u0001K\r\n\r\n", "reason phrase")]
    [InlineData("\n", "bare LF")]
    public void TryParse_BadUpstreamResponse_Is502(string response, string reason)
    {
        var result = Parse(response);

        Assert.Equal(Http1ParseStatus.Error, result.Status);
        Assert.Equal(502, result.Error.Status);
        Assert.Contains(reason, result.Error.Reason, StringComparison.Ordinal);
    }
}
