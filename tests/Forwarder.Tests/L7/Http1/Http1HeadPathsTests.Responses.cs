using System.Buffers;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

/// <summary>Response heads: the same bytes come to the same outcome however they are split.</summary>
public sealed partial class Http1HeadPathsTests
{
    [Theory]
    [InlineData("HTTP/1.1 201 Created Here\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n", "hello", false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "zzz", false)]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", "until close\r\n\r\n", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", true)]
    [InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", "", false)]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", "abc", false)]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", "\u0081\u0000", false)]
    [InlineData("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "", false)]
    [InlineData("HTTP/1.1 200 OK\r\nconnection: close, X-Hop\r\nX-Hop: 1\r\nVia: 1.1 b\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\n\r\n", "ok", false)]
    public void TryParseResponse_GoodHead_IsTheSameWhereverItIsSplit(string head, string after, bool headRequest)
    {
        var bytes = Encoding.Latin1.GetBytes(head + after);

        var whole = ParseResponse(new ReadOnlySequence<byte>(bytes), Http1Limits.Default, headRequest);

        Assert.Equal(Http1ParseStatus.Complete, whole.Outcome.Status);
        Assert.Equal(head.Length, whole.Outcome.Consumed);
        AssertSameResponseOutcomeEverywhere(bytes, Http1Limits.Default, headRequest, whole);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nX-Split: a\nInjected: b\r\n\r\n", "bare LF", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nX-Split: a\n\r\nInjected: b\r\n\r\n", "bare LF", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nA: b\r\n\n\nX: 1\r\n\r\n", "bare LF", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nA: b\r\n\n\r\n\r\n", "bare LF", 0)]
    [InlineData("\n", "bare LF", 0)]
    [InlineData("\r\n\r\n", "HTTP/1.x status line", 0)]
    [InlineData("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.x status line", 0)]
    [InlineData("HTTP/1.1 200 OK\r\n Folded: b\r\n\r\n", "obs-fold", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", "whitespace between a header name and its colon", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\n\r\n", "control character", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nX-Bad: a\rb\r\n\r\n", "control character", 0)]
    [InlineData("HTTP/1.1 200 O\u0001K\r\n\r\n", "reason phrase", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", "conflicting Content-Length", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding", 0)]
    [InlineData("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 response", 0)]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n", "malformed status code", 0)]
    [InlineData("SSH-2.0-OpenSSH_9.2\r\n\r\n", "HTTP/1.x status line", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "response head too large", 36)]
    [InlineData("HTTP/1.1 200 OK\r\nX-Big: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n", "response head too large", 64)]
    [InlineData("HTTP/1.1 200 OK\r\nX-Big: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "response head too large", 64)]
    public void TryParseResponse_BadHead_Is502WhereverItIsSplit(string response, string reason, int maxHeadBytes)
    {
        var bytes = Encoding.Latin1.GetBytes(response);
        var limits = Limits(0, maxHeadBytes, 0);

        var whole = ParseResponse(new ReadOnlySequence<byte>(bytes), limits, headRequest: false);

        Assert.Equal(Http1ParseStatus.Error, whole.Outcome.Status);
        Assert.Equal(502, whole.Outcome.ErrorStatus);
        Assert.Contains(reason, whole.Reason, StringComparison.Ordinal);
        Assert.Equal(0, whole.Outcome.Consumed);
        AssertSameResponseOutcomeEverywhere(bytes, limits, headRequest: false, whole, reason);
    }

    [Fact]
    public void TryParseResponse_HeadExactlyAtTheLimit_IsCompleteWhereverItIsSplit()
    {
        var head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        var bytes = Encoding.Latin1.GetBytes(head + "HTTP/1.1");
        var limits = Limits(0, head.Length, 0);

        var whole = ParseResponse(new ReadOnlySequence<byte>(bytes), limits, headRequest: false);

        Assert.Equal(new Outcome(Http1ParseStatus.Complete, 0, head.Length, whole.Outcome.Fields), whole.Outcome);
        AssertSameResponseOutcomeEverywhere(bytes, limits, headRequest: false, whole);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n", 0)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38)]
    public void TryParseResponse_AnyPrefixOfAGoodHead_NeedsMoreWhereverItIsSplit(string head, int maxHeadBytes)
    {
        var bytes = Encoding.Latin1.GetBytes(head);
        var limits = Limits(0, maxHeadBytes, 0);

        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            foreach (var (name, buffer) in Splits(prefix))
            {
                var result = ParseResponse(buffer, limits, headRequest: false);
                Assert.True(
                    result.Outcome == new Outcome(Http1ParseStatus.NeedMore, 0, 0, string.Empty),
                    $"{length} bytes, {name}: {result.Outcome} ({result.Reason})");
            }
        }
    }

    [Fact]
    public void TryParseResponse_OneByteSegments_ReadEveryFieldAndItsKind()
    {
        var head = new Http1ResponseHead();
        var bytes = Encoding.Latin1.GetBytes("HTTP/1.1 200 Fine\r\nConnection: X-Hop\r\nX-Hop: 1\r\ntransfer-encoding: chunked\r\nVIA: 1.0 b\r\n\r\n0\r\n\r\n");

        var status = Http1ResponseParser.TryParse(TestSequences.Chunks(bytes, 1), Http1Limits.Default, headRequest: false, head, out var consumed, out var error);

        Assert.True(status == Http1ParseStatus.Complete, error.Reason);
        Assert.Equal(bytes.Length - 5, TestSequences.Chunks(bytes, 1).Slice(TestSequences.Chunks(bytes, 1).Start, consumed).Length);
        Assert.Equal((200, "Fine", Http1BodyFraming.Chunked, true), (head.Status, Text(head.Reason), head.Framing, head.KeepAlive));
        Assert.True(head.ConnectionNamesFields);
        Assert.Equal(
            [
                ("Connection", "X-Hop", Http1FieldKind.Connection),
                ("X-Hop", "1", Http1FieldKind.Other),
                ("transfer-encoding", "chunked", Http1FieldKind.TransferEncoding),
                ("VIA", "1.0 b", Http1FieldKind.Via),
            ],
            Enumerable.Range(0, head.HeaderCount).Select(i => (Text(head.HeaderName(i)), Text(head.HeaderValue(i)), head.HeaderKind(i))));
        Assert.True(head.IsNamedByConnection(1));
        Assert.False(head.IsNamedByConnection(3));
    }
}
