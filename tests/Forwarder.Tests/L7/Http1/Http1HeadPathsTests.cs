using System.Buffers;
using System.Globalization;
using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.Tests.L7.Http1;

/// <summary>
/// Both parsers take a head that sits whole in the first segment in one search, and any other
/// line by line. The same bytes must come to the same outcome however they are split into
/// segments: status, error status, where the body starts, and every parsed field.
/// </summary>
public sealed partial class Http1HeadPathsTests
{
    private static Http1Limits Limits(int maxRequestLine, int maxHeadBytes, int maxHeaders) => new(
        maxRequestLine == 0 ? Http1Limits.Default.MaxRequestLine : maxRequestLine,
        maxHeadBytes == 0 ? Http1Limits.Default.MaxHeadBytes : maxHeadBytes,
        maxHeaders == 0 ? Http1Limits.Default.MaxHeaders : maxHeaders);

    private static string Text(ReadOnlySpan<byte> value) => Encoding.Latin1.GetString(value);

    // ---- requests --------------------------------------------------------------------------

    [Theory]
    [InlineData("GET /items/42?color=red HTTP/1.1\r\nHost: shop.example:8080\r\nX-Trace:  abc \t\r\nAccept: */*\r\n\r\n", "", 0, 0, 0)]
    [InlineData("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", "hello", 0, 0, 0)]
    [InlineData("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", "hello\r\n\r\nGET / HTTP/1.1\r\n", 0, 0, 0)]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "GET /b HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, 0)]
    [InlineData("POST /up HTTP/1.1\r\nhost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 0, 0, 0)]
    [InlineData("GET /ws HTTP/1.1\r\nHOST: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\nVia: 1.1 edge\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: b\r\nX-Request-Id: r1\r\nProxy-Connection: x\r\nTrailer: X-Sum\r\n\r\n", "", 0, 0, 0)]
    [InlineData("GET / HTTP/1.0\r\n\r\n", "", 0, 0, 0)]
    [InlineData("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "x", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0, 0\r\n\r\n", "", 0, 0, 0)]
    [InlineData("GET http://api.internal:81/v1?id=7 HTTP/1.1\r\nHost: ignored\r\n\r\n", "", 0, 0, 0)]
    [InlineData("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Obs: caf\u00e9\r\n\r\n", "", 0, 0, 0)]
    [InlineData("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, 0, 0)]
    [InlineData("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "body", 0, 0, 0)]
    [InlineData("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n", "", 19, 0, 0)]
    [InlineData("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n", "more", 0, 30, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-1: 1\r\nX-2: 2\r\n\r\n", "", 0, 0, 3)]
    public void TryParseRequest_GoodHead_IsTheSameWhereverItIsSplit(string head, string after, int maxRequestLine, int maxHeadBytes, int maxHeaders)
    {
        var bytes = Encoding.Latin1.GetBytes(head + after);
        var limits = Limits(maxRequestLine, maxHeadBytes, maxHeaders);

        var whole = ParseRequest(new ReadOnlySequence<byte>(bytes), limits);

        Assert.Equal(Http1ParseStatus.Complete, whole.Outcome.Status);
        Assert.Equal(head.Length, whole.Outcome.Consumed);
        AssertSameRequestOutcomeEverywhere(bytes, limits, whole);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET /\n HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\nb\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\n\nX: 1\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\n\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\n\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("\n\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400, "obs-fold", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\tX: tab\r\n\r\n", 400, "obs-fold", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400, "whitespace between a header name and its colon", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\u0001b\r\n\r\n", 400, "control character", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\u007fb\r\n\r\n", 400, "control character", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\rb\r\n\r\n", 400, "control character", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\r\r\n\r\n", 400, "control character", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n", 400, "malformed header field name", 0, 0, 0)]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "conflicting Content-Length", 0, 0, 0)]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nCONTENT-LENGTH: 5, 6\r\n\r\n", 400, "conflicting Content-Length", 0, 0, 0)]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length and Transfer-Encoding", 0, 0, 0)]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n", 400, "both Content-Length and Transfer-Encoding", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\n\r\n", 400, "missing Host", 0, 0, 0)]
    [InlineData("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version not supported", 0, 0, 0)]
    [InlineData("CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", 405, "CONNECT", 0, 0, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, "100-continue", 0, 0, 0)]
    [InlineData("GET /abcd HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request line too long", 19, 0, 0)]
    [InlineData("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request line too long", 32, 0, 0)]
    [InlineData("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 414, "request line too long", 32, 0, 0)]
    [InlineData("\r\nGET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request line too long", 32, 0, 0)]
    [InlineData("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n", 431, "request head too large", 0, 29, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nCookie: cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\r\n\r\n", 431, "request head too large", 0, 64, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nCookie: cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 431, "request head too large", 0, 64, 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-1: 1\r\nX-2: 2\r\nX-3: 3\r\n\r\n", 431, "more than 3 header fields", 0, 0, 3)]
    public void TryParseRequest_BadHead_IsRefusedTheSameWhereverItIsSplit(string request, int errorStatus, string reason, int maxRequestLine, int maxHeadBytes, int maxHeaders)
    {
        var bytes = Encoding.Latin1.GetBytes(request);
        var limits = Limits(maxRequestLine, maxHeadBytes, maxHeaders);

        var whole = ParseRequest(new ReadOnlySequence<byte>(bytes), limits);

        Assert.Equal(Http1ParseStatus.Error, whole.Outcome.Status);
        Assert.Equal(errorStatus, whole.Outcome.ErrorStatus);
        Assert.Contains(reason, whole.Reason, StringComparison.Ordinal);
        Assert.Equal(0, whole.Outcome.Consumed);
        AssertSameRequestOutcomeEverywhere(bytes, limits, whole, reason);
    }

    /// <summary>
    /// A head with a bare LF and another fault: the one-block path parses it and reports the fault
    /// the parse meets first, the line-by-line path refuses the bare LF as it reads the line. The
    /// client should get the same status whichever way its bytes happened to arrive.
    /// </summary>
    [Theory]
    [InlineData("GET / HTTP/2.0\r\nHost: a\nX: 1\r\n\r\n", 0)]
    [InlineData("CONNECT a:1 HTTP/1.1\r\nHost: a:1\nX: 1\r\n\r\n", 0)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-1: 1\r\nX-2: 2\nX-3: 3\r\n\r\n", 1)]
    public void TryParseRequest_BareLfAfterAnotherFault_GetsTheSameStatusWhereverItIsSplit(string request, int maxHeaders)
    {
        var bytes = Encoding.Latin1.GetBytes(request);
        var limits = Limits(0, 0, maxHeaders);

        var whole = ParseRequest(new ReadOnlySequence<byte>(bytes), limits);

        Assert.Equal(Http1ParseStatus.Error, whole.Outcome.Status);
        AssertSameRequestOutcomeEverywhere(bytes, limits, whole);
    }

    [Theory]
    [InlineData("GET /items/42?color=red HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\n", 0, 0)]
    [InlineData("\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", 0, 0)]
    [InlineData("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n", 19, 30)]
    public void TryParseRequest_AnyPrefixOfAGoodHead_NeedsMoreWhereverItIsSplit(string head, int maxRequestLine, int maxHeadBytes)
    {
        var bytes = Encoding.Latin1.GetBytes(head);
        var limits = Limits(maxRequestLine, maxHeadBytes, 0);

        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            foreach (var (name, buffer) in Splits(prefix))
            {
                var result = ParseRequest(buffer, limits);
                Assert.True(
                    result.Outcome == new Outcome(Http1ParseStatus.NeedMore, 0, 0, string.Empty),
                    $"{length} bytes, {name}: {result.Outcome} ({result.Reason})");
            }
        }
    }

    [Fact]
    public void TryParseRequest_OneByteSegments_ReadEveryFieldAndItsKind()
    {
        var head = new Http1RequestHead();
        var bytes = Encoding.Latin1.GetBytes(
            "POST /up?x=1 HTTP/1.1\r\nhost: api\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKEEP-ALIVE: timeout=5\r\nx-forwarded-for: 198.51.100.1\r\n\r\n5\r\nhello\r\n");

        var status = Http1RequestParser.TryParse(TestSequences.Chunks(bytes, 1), Http1Limits.Default, head, out var consumed, out var error);

        Assert.True(status == Http1ParseStatus.Complete, error.Reason);
        Assert.Equal(bytes.Length - 10, TestSequences.Chunks(bytes, 1).Slice(TestSequences.Chunks(bytes, 1).Start, consumed).Length);
        Assert.Equal(("POST", "/up?x=1", "/up", "x=1", "api"), (Text(head.Method), Text(head.Target), Text(head.Path), Text(head.Query), Text(head.Host)));
        Assert.Equal(Http1Version.Http11, head.Version);
        Assert.Null(head.ContentLength);
        Assert.True(head.Chunked);
        Assert.True(head.KeepAlive);
        Assert.True(head.ConnectionNamesFields);
        Assert.Equal(
            [
                ("host", "api", Http1FieldKind.Host),
                ("Transfer-Encoding", "gzip, chunked", Http1FieldKind.TransferEncoding),
                ("Connection", "keep-alive, X-Secret", Http1FieldKind.Connection),
                ("X-Secret", "s", Http1FieldKind.Other),
                ("KEEP-ALIVE", "timeout=5", Http1FieldKind.KeepAlive),
                ("x-forwarded-for", "198.51.100.1", Http1FieldKind.XForwardedFor),
            ],
            Enumerable.Range(0, head.HeaderCount).Select(i => (Text(head.HeaderName(i)), Text(head.HeaderValue(i)), head.HeaderKind(i))));
        Assert.True(head.IsNamedByConnection(3));
        Assert.False(head.IsNamedByConnection(5));
        Assert.Equal("198.51.100.1", Text(head.First(Http1FieldKind.XForwardedFor)));
    }

    [Fact]
    public void TryParseRequest_SlowPathAfterFastPath_ForgetsThePreviousHead()
    {
        var head = new Http1RequestHead();
        var first = "POST /a?x=1 HTTP/1.1\r\nHost: one\r\nContent-Length: 3\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n"u8.ToArray();
        var second = "GET /b HTTP/1.1\r\nHost: two\r\n\r\n"u8.ToArray();

        Assert.Equal(Http1ParseStatus.Complete, Http1RequestParser.TryParse(new ReadOnlySequence<byte>(first), Http1Limits.Default, head, out _, out _));
        Assert.Equal(Http1ParseStatus.Complete, Http1RequestParser.TryParse(TestSequences.Chunks(second, 2), Http1Limits.Default, head, out _, out _));

        Assert.Equal(("GET", "two", string.Empty), (Text(head.Method), Text(head.Host), Text(head.Query)));
        Assert.Null(head.ContentLength);
        Assert.True(head.KeepAlive);
        Assert.False(head.ConnectionNamesFields);
        Assert.Equal(1, head.HeaderCount);
    }

    // ---- helpers -----------------------------------------------------------------------------

    /// <summary>What a parse came to; <see cref="Fields"/> is everything parsed, as text, when it completed.</summary>
    private sealed record Outcome(Http1ParseStatus Status, int ErrorStatus, long Consumed, string Fields);

    private static (Outcome Outcome, string Reason) ParseRequest(ReadOnlySequence<byte> buffer, Http1Limits limits)
    {
        // A head used before, so that anything left over from the previous message would show.
        var head = new Http1RequestHead();
        Http1RequestParser.TryParse(new ReadOnlySequence<byte>("POST /old?q HTTP/1.1\r\nHost: old\r\nContent-Length: 9\r\nConnection: close, X-Old\r\nX-Old: 1\r\nUpgrade: h2c\r\n\r\n"u8.ToArray()), Http1Limits.Default, head, out _, out _);

        var status = Http1RequestParser.TryParse(buffer, limits, head, out var consumed, out var error);
        var fields = new StringBuilder();
        if (status == Http1ParseStatus.Complete)
        {
            fields.Append(CultureInfo.InvariantCulture, $"{Text(head.Method)} [{Text(head.Target)}] path=[{Text(head.Path)}] query=[{Text(head.Query)}] host=[{Text(head.Host)}] {head.Version}");
            fields.Append(CultureInfo.InvariantCulture, $" length={head.ContentLength?.ToString(CultureInfo.InvariantCulture) ?? "none"} chunked={head.Chunked} keepAlive={head.KeepAlive} upgrade={head.Upgrade} expect={head.ExpectContinue}");
            AppendFields(fields, head);
        }

        return (new Outcome(status, error.Status, buffer.Slice(buffer.Start, consumed).Length, fields.ToString()), error.Reason ?? string.Empty);
    }

    private static (Outcome Outcome, string Reason) ParseResponse(ReadOnlySequence<byte> buffer, Http1Limits limits, bool headRequest)
    {
        var head = new Http1ResponseHead();
        Http1ResponseParser.TryParse(new ReadOnlySequence<byte>("HTTP/1.1 404 Old\r\nContent-Length: 9\r\nConnection: X-Old\r\nX-Old: 1\r\n\r\n"u8.ToArray()), Http1Limits.Default, false, head, out _, out _);

        var status = Http1ResponseParser.TryParse(buffer, limits, headRequest, head, out var consumed, out var error);
        var fields = new StringBuilder();
        if (status == Http1ParseStatus.Complete)
        {
            fields.Append(CultureInfo.InvariantCulture, $"{head.Version} {head.Status} [{Text(head.Reason)}] interim={head.IsInterim} framing={head.Framing} length={head.ContentLength} keepAlive={head.KeepAlive}");
            AppendFields(fields, head);
        }

        return (new Outcome(status, error.Status, buffer.Slice(buffer.Start, consumed).Length, fields.ToString()), error.Reason ?? string.Empty);
    }

    private static void AppendFields(StringBuilder fields, Http1Head head)
    {
        fields.Append(CultureInfo.InvariantCulture, $" connectionNamesFields={head.ConnectionNamesFields} count={head.HeaderCount}");
        for (var i = 0; i < head.HeaderCount; i++)
        {
            fields.Append(CultureInfo.InvariantCulture, $" | [{Text(head.HeaderName(i))}]=[{Text(head.HeaderValue(i))}] {head.HeaderKind(i)}");
            if (head.ConnectionNamesFields && head.HeaderKind(i) == Http1FieldKind.Other)
            {
                fields.Append(CultureInfo.InvariantCulture, $" named={head.IsNamedByConnection(i)}");
            }
        }
    }

    private static void AssertSameRequestOutcomeEverywhere(byte[] bytes, Http1Limits limits, (Outcome Outcome, string Reason) whole, string? reason = null)
    {
        foreach (var (name, buffer) in Splits(bytes))
        {
            var split = ParseRequest(buffer, limits);
            Assert.True(whole.Outcome == split.Outcome, $"{name}:\n  one segment: {whole.Outcome} ({whole.Reason})\n  split:       {split.Outcome} ({split.Reason})");
            if (reason is not null)
            {
                Assert.True(split.Reason.Contains(reason, StringComparison.Ordinal), $"{name}: \"{split.Reason}\" does not say \"{reason}\"");
            }
        }
    }

    private static void AssertSameResponseOutcomeEverywhere(byte[] bytes, Http1Limits limits, bool headRequest, (Outcome Outcome, string Reason) whole, string? reason = null)
    {
        foreach (var (name, buffer) in Splits(bytes))
        {
            var split = ParseResponse(buffer, limits, headRequest);
            Assert.True(whole.Outcome == split.Outcome, $"{name}:\n  one segment: {whole.Outcome} ({whole.Reason})\n  split:       {split.Outcome} ({split.Reason})");
            if (reason is not null)
            {
                Assert.True(split.Reason.Contains(reason, StringComparison.Ordinal), $"{name}: \"{split.Reason}\" does not say \"{reason}\"");
            }
        }
    }

    /// <summary>
    /// The bytes as sequences of several segments: cut in two at every position (an empty first
    /// or last segment included), in equal small pieces, and in three or four around every
    /// CRLFCRLF, with an empty segment in the middle of it too.
    /// </summary>
    private static IEnumerable<(string Name, ReadOnlySequence<byte> Buffer)> Splits(byte[] bytes)
    {
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            yield return ($"cut at {cut}", TestSequences.Cut(bytes, cut));
        }

        foreach (var size in new[] { 1, 2, 3, 7 })
        {
            yield return ($"{size}-byte segments", TestSequences.Chunks(bytes, size));
        }

        foreach (var at in HeadEnds(bytes))
        {
            yield return ($"cut at {at + 1}, {at + 2}, {at + 3}", TestSequences.Cut(bytes, at + 1, at + 2, at + 3));
            yield return ($"cut at {at}, {at + 2}, {at + 4}", TestSequences.Cut(bytes, at, at + 2, at + 4));
            yield return ($"cut at {at + 2}, {at + 2}", TestSequences.Cut(bytes, at + 2, at + 2));
            yield return ($"cut at 1, {at + 3}", TestSequences.Cut(bytes, Math.Min(1, at + 3), at + 3));
        }
    }

    /// <summary>Where every CRLFCRLF starts, overlapping ones included.</summary>
    private static List<int> HeadEnds(byte[] bytes)
    {
        var starts = new List<int>();
        for (var at = 0; at + 4 <= bytes.Length; at++)
        {
            if (bytes.AsSpan(at, 4).SequenceEqual("\r\n\r\n"u8))
            {
                starts.Add(at);
            }
        }

        return starts;
    }
}
