using System.Buffers;

namespace Forwarder.L7.Http1;

/// <summary>
/// Parses an upstream's response head as strictly as requests are parsed: a response whose
/// framing two parsers could read differently (response splitting, conflicting lengths) fails
/// with 502 rather than reaching the client, and the upstream connection is not reused.
/// </summary>
internal static class Http1ResponseParser
{
    /// <param name="headRequest">The request was HEAD: the response has no body whatever its headers say.</param>
    public static Http1ParseStatus TryParse(in ReadOnlySequence<byte> buffer, Http1Limits limits, bool headRequest, Http1ResponseHead head, out SequencePosition consumed, out Http1Error error)
    {
        consumed = buffer.Start;
        long headEnd = FindWholeHead(buffer.FirstSpan, limits);
        if (headEnd > 0)
        {
            buffer.FirstSpan[..(int)headEnd].CopyTo(head.Reset((int)headEnd));
        }
        else
        {
            var status = FindHeadEnd(buffer, limits, out headEnd, out error);
            if (status != Http1ParseStatus.Complete)
            {
                return status;
            }

            buffer.Slice(0, headEnd).CopyTo(head.Reset((int)headEnd));
        }

        if (!Parse(head.Bytes, limits, headRequest, head, out error))
        {
            return Http1ParseStatus.Error;
        }

        consumed = buffer.GetPosition(headEnd);
        return Http1ParseStatus.Complete;
    }

    /// <summary>Finds the empty line that ends the head line by line, enforcing the size limit as bytes arrive.</summary>
    private static Http1ParseStatus FindHeadEnd(in ReadOnlySequence<byte> buffer, Http1Limits limits, out long headEnd, out Http1Error error)
    {
        var reader = new SequenceReader<byte>(buffer);
        headEnd = 0;
        long lineStart = 0;
        while (headEnd == 0)
        {
            if (!reader.TryAdvanceTo((byte)'\n'))
            {
                error = buffer.Length >= limits.MaxHeadBytes ? BadGateway("response head too large") : default;
                return error.Status == 0 ? Http1ParseStatus.NeedMore : Http1ParseStatus.Error;
            }

            if (reader.Consumed > limits.MaxHeadBytes)
            {
                error = BadGateway("response head too large");
                return Http1ParseStatus.Error;
            }

            var lineLength = reader.Consumed - 1 - lineStart;
            if (lineLength == 0)
            {
                error = BadGateway("bare LF in the response head");
                return Http1ParseStatus.Error;
            }

            if (lineLength == 1 && lineStart > 0 && Http1Fields.FollowsCarriageReturn(ref reader))
            {
                headEnd = reader.Consumed;
            }

            lineStart = reader.Consumed;
        }

        error = default;
        return Http1ParseStatus.Complete;
    }

    /// <summary>
    /// The common case, found with vectorized searches: the first block holds a whole head within
    /// the limit and without a bare LF (which could end the head sooner line by line). Its length,
    /// or 0 to go line by line.
    /// </summary>
    private static int FindWholeHead(ReadOnlySpan<byte> span, Http1Limits limits)
    {
        var end = span.IndexOf("\r\n\r\n"u8);
        return end > 0 && end + 4 <= limits.MaxHeadBytes && !Http1Fields.HasBareLineFeed(span[..(end + 4)]) ? end + 4 : 0;
    }

    private static bool Parse(ReadOnlySpan<byte> bytes, Http1Limits limits, bool headRequest, Http1ResponseHead head, out Http1Error error)
    {
        var lineEnd = Http1Fields.LineLength(bytes, 0);
        if (lineEnd < 0)
        {
            error = BadGateway("bare LF in the response head");
            return false;
        }

        if (!ParseStatusLine(bytes[..lineEnd], head, out error))
        {
            return false;
        }

        var facts = new Http1Fields.Facts();
        if (!Http1Fields.TryParseLines(bytes, lineEnd + 2, limits.MaxHeaders, head, ref facts, out error))
        {
            // Whatever is wrong with an upstream's head, the client is told the gateway failed.
            error = BadGateway($"{error.Reason} (in the response)");
            return false;
        }

        return ApplyFraming(head, facts, headRequest, out error);
    }

    /// <summary>HTTP/1.x SP 3DIGIT SP [reason]: the reason may be empty, the space before it may not be missing in 1.1 (nginx and HAProxy accept its absence, and so do we).</summary>
    private static bool ParseStatusLine(ReadOnlySpan<byte> line, Http1ResponseHead head, out Http1Error error)
    {
        error = default;
        Http1Version version;
        if (line.StartsWith("HTTP/1.1 "u8))
        {
            version = Http1Version.Http11;
        }
        else if (line.StartsWith("HTTP/1.0 "u8))
        {
            version = Http1Version.Http10;
        }
        else
        {
            error = BadGateway("the upstream did not answer with an HTTP/1.x status line");
            return false;
        }

        var code = line.Length >= 12 ? line.Slice(9, 3) : default;
        if (code.Length != 3 || code.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0 || code[0] == (byte)'0' || (line.Length > 12 && line[12] != (byte)' '))
        {
            error = BadGateway("malformed status code in the response");
            return false;
        }

        var reasonStart = Math.Min(line.Length, 13);
        if (!Http1Fields.IsFieldValue(line[reasonStart..]))
        {
            error = BadGateway("control character in the response's reason phrase");
            return false;
        }

        head.SetStatusLine(version, ((code[0] - '0') * 100) + ((code[1] - '0') * 10) + (code[2] - '0'), new Range(reasonStart, line.Length));
        return true;
    }

    private static bool ApplyFraming(Http1ResponseHead head, in Http1Fields.Facts facts, bool headRequest, out Http1Error error)
    {
        error = default;
        if (facts.TransferEncoding && facts.ContentLength is not null)
        {
            error = BadGateway("the response has both Content-Length and Transfer-Encoding");
            return false;
        }

        if (facts.TransferEncoding && head.Version == Http1Version.Http10)
        {
            error = BadGateway("Transfer-Encoding in an HTTP/1.0 response");
            return false;
        }

        var keepAlive = head.Version == Http1Version.Http11 ? !facts.ConnectionClose : facts.ConnectionKeepAlive && !facts.ConnectionClose;
        if (headRequest || head.Status is < 200 or 204 or 304)
        {
            head.SetFraming(Http1BodyFraming.None, 0, keepAlive && head.Status != 101);
        }
        else if (facts.TransferEncoding)
        {
            // A coding list that does not end in chunked runs until the upstream closes.
            head.SetFraming(facts.EndsChunked ? Http1BodyFraming.Chunked : Http1BodyFraming.UntilClose, 0, keepAlive && facts.EndsChunked);
        }
        else if (facts.ContentLength is { } length)
        {
            head.SetFraming(Http1BodyFraming.Length, length, keepAlive);
        }
        else
        {
            head.SetFraming(Http1BodyFraming.UntilClose, 0, keepAlive: false);
        }

        return true;
    }

    private static Http1Error BadGateway(string reason) => new(502, reason);
}
