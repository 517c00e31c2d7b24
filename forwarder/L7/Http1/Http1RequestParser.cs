using System.Buffers;
using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>What a parse attempt came to.</summary>
internal enum Http1ParseStatus
{
    /// <summary>The head is not complete yet; read more and try again from the same start.</summary>
    NeedMore,

    /// <summary>A whole head was parsed; the body (if any) starts at the consumed position.</summary>
    Complete,

    /// <summary>The request is refused; answer the error's status and close the connection.</summary>
    Error,
}

/// <summary>
/// Parses HTTP/1.1 request heads strictly, as a proxy in front of other servers must: every
/// shape that two parsers could read differently (the request-smuggling shapes) is refused with
/// 400 rather than guessed at, so what we forward is exactly what we understood. Limits give
/// 414 and 431. RFC 9110 and 9112 are the reference; HAProxy's and nginx's behaviour where they
/// leave a choice.
/// </summary>
internal static class Http1RequestParser
{
    /// <summary>reg-name: unreserved, sub-delims and pct-encoded (RFC 3986 3.2.2).</summary>
    private static readonly SearchValues<byte> RegNameChars = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=%"u8);

    /// <summary>What an IP literal may hold: IPv6 (with an embedded IPv4) and nothing fancier.</summary>
    private static readonly SearchValues<byte> IpLiteralChars = SearchValues.Create("0123456789abcdefABCDEF:."u8);

    public static Http1ParseStatus TryParse(in ReadOnlySequence<byte> buffer, Http1Limits limits, Http1RequestHead head, out SequencePosition consumed, out Http1Error error)
    {
        consumed = buffer.Start;
        error = default;
        long headEnd = FindWholeHead(buffer.FirstSpan, limits);
        if (headEnd > 0)
        {
            buffer.FirstSpan[..(int)headEnd].CopyTo(head.Reset((int)headEnd));
        }
        else
        {
            var status = FindHeadEnd(buffer, limits, out var headStart, out headEnd, out error);
            if (status != Http1ParseStatus.Complete)
            {
                return status;
            }

            buffer.Slice(headStart, headEnd - headStart).CopyTo(head.Reset((int)(headEnd - headStart)));
        }

        if (!Parse(head.Bytes, limits, head, out error))
        {
            return Http1ParseStatus.Error;
        }

        consumed = buffer.GetPosition(headEnd);
        return Http1ParseStatus.Complete;
    }

    /// <summary>
    /// The common case, found with vectorized searches: the first block holds a whole head that
    /// starts with its request line, is within the limits and has no bare LF. Its length, or 0 for
    /// anything else, which <see cref="FindHeadEnd"/> then takes line by line (refusing a bare LF
    /// where it stands, so the same bytes get the same answer however they arrived).
    /// </summary>
    private static int FindWholeHead(ReadOnlySpan<byte> span, Http1Limits limits)
    {
        if (span.IsEmpty || span[0] is (byte)'\r' or (byte)'\n')
        {
            return 0;
        }

        var end = span.IndexOf("\r\n\r\n"u8);
        if (end < 0 || end + 4 > limits.MaxHeadBytes || span[..end].IndexOf((byte)'\n') + 1 is var line && (line == 0 ? end + 2 : line) > limits.MaxRequestLine)
        {
            return 0;
        }

        return Http1Fields.HasBareLineFeed(span[..(end + 4)]) ? 0 : end + 4;
    }

    /// <summary>Finds the empty line that ends the head, enforcing the size limits as bytes arrive.</summary>
    private static Http1ParseStatus FindHeadEnd(in ReadOnlySequence<byte> buffer, Http1Limits limits, out long headStart, out long headEnd, out Http1Error error)
    {
        headStart = 0;
        headEnd = 0;
        error = default;
        var reader = new SequenceReader<byte>(buffer);
        var firstLine = true;
        long lineStart = 0;
        while (reader.TryAdvanceTo((byte)'\n'))
        {
            var lineLength = reader.Consumed - 1 - lineStart;
            if (firstLine && reader.Consumed - headStart > limits.MaxRequestLine)
            {
                error = new Http1Error(414, "request line too long");
                return Http1ParseStatus.Error;
            }

            if (reader.Consumed > limits.MaxHeadBytes)
            {
                error = new Http1Error(431, "request head too large");
                return Http1ParseStatus.Error;
            }

            // Refused as soon as the line ends, not once a whole head arrived: garbage (a TLS
            // hello sent to a plain port) gets its 400 at once instead of filling the head limit.
            if (lineLength == 0 || !Http1Fields.FollowsCarriageReturn(ref reader))
            {
                error = Http1Error.BadRequest("bare LF: lines must end with CRLF");
                return Http1ParseStatus.Error;
            }

            if (lineLength == 1)
            {
                if (firstLine)
                {
                    // An empty line before the request line (left over after a body) is skipped, as RFC 9112 allows.
                    headStart = lineStart = reader.Consumed;
                    continue;
                }

                headEnd = reader.Consumed;
                return Http1ParseStatus.Complete;
            }

            firstLine = false;
            lineStart = reader.Consumed;
        }

        if (firstLine && buffer.Length - headStart >= limits.MaxRequestLine)
        {
            error = new Http1Error(414, "request line too long");
            return Http1ParseStatus.Error;
        }

        if (buffer.Length >= limits.MaxHeadBytes)
        {
            error = new Http1Error(431, "request head too large");
            return Http1ParseStatus.Error;
        }

        return Http1ParseStatus.NeedMore;
    }

    private static bool Parse(ReadOnlySpan<byte> bytes, Http1Limits limits, Http1RequestHead head, out Http1Error error)
    {
        var lineEnd = Http1Fields.LineLength(bytes, 0);
        if (lineEnd < 0)
        {
            error = Http1Error.BadRequest("bare LF: lines must end with CRLF");
            return false;
        }

        if (!ParseRequestLine(bytes[..lineEnd], head, out error))
        {
            return false;
        }

        var facts = new Http1Fields.Facts();
        if (!Http1Fields.TryParseLines(bytes, lineEnd + 2, limits.MaxHeaders, head, ref facts, out error))
        {
            return false;
        }

        return ApplyHeaderFacts(head, facts, out error);
    }

    internal static bool ParseRequestLine(ReadOnlySpan<byte> line, Http1RequestHead head, out Http1Error error)
    {
        error = default;
        var firstSpace = line.IndexOf((byte)' ');
        if (firstSpace <= 0 || !Http1Fields.IsToken(line[..firstSpace]))
        {
            error = Http1Error.BadRequest("malformed request line: bad method");
            return false;
        }

        var rest = line[(firstSpace + 1)..];
        var secondSpace = rest.IndexOf((byte)' ');
        if (secondSpace <= 0)
        {
            error = Http1Error.BadRequest("malformed request line: expected METHOD SP TARGET SP VERSION");
            return false;
        }

        var target = rest[..secondSpace];
        var version = rest[(secondSpace + 1)..];
        if (target.IndexOfAnyExceptInRange((byte)0x21, (byte)0x7e) >= 0)
        {
            error = Http1Error.BadRequest("malformed request target");
            return false;
        }

        Http1Version parsedVersion;
        if (version.SequenceEqual("HTTP/1.1"u8))
        {
            parsedVersion = Http1Version.Http11;
        }
        else if (version.SequenceEqual("HTTP/1.0"u8))
        {
            parsedVersion = Http1Version.Http10;
        }
        else
        {
            error = version.Length == 8 && version.StartsWith("HTTP/"u8) && char.IsAsciiDigit((char)version[5]) && version[6] == (byte)'.' && char.IsAsciiDigit((char)version[7])
                ? new Http1Error(505, "HTTP version not supported")
                : Http1Error.BadRequest("malformed request line: bad version");
            return false;
        }

        var method = line[..firstSpace];
        var targetStart = firstSpace + 1;
        var targetRange = new Range(targetStart, targetStart + target.Length);
        return ParseTarget(method, target, targetStart, targetRange, parsedVersion, head, out error);
    }

    private static bool ParseTarget(ReadOnlySpan<byte> method, ReadOnlySpan<byte> target, int offset, Range targetRange, Http1Version version, Http1RequestHead head, out Http1Error error)
    {
        error = default;
        if (method.SequenceEqual("CONNECT"u8))
        {
            // Tunnelling on request would make us an open proxy.
            error = new Http1Error(405, "CONNECT is not supported");
            return false;
        }

        if (target.IndexOf((byte)'#') >= 0)
        {
            error = Http1Error.BadRequest("a fragment is not allowed in the request target");
            return false;
        }

        if (target.SequenceEqual("*"u8))
        {
            if (!method.SequenceEqual("OPTIONS"u8))
            {
                error = Http1Error.BadRequest("'*' is only a target for OPTIONS");
                return false;
            }

            head.SetRequestLine(new Range(offset - method.Length - 1, offset - 1), targetRange, targetRange, new Range(offset + 1, offset + 1), version);
            return true;
        }

        var pathStart = 0;
        if (target[0] != (byte)'/')
        {
            // absolute-form: scheme "://" authority [path]; its authority replaces Host.
            var schemeEnd = target.IndexOf("://"u8);
            var scheme = schemeEnd > 0 ? target[..schemeEnd] : default;
            if (!Ascii.EqualsIgnoreCase(scheme, "http"u8) && !Ascii.EqualsIgnoreCase(scheme, "https"u8))
            {
                error = Http1Error.BadRequest("request target must start with '/' or be an absolute http(s) URL");
                return false;
            }

            var authorityStart = schemeEnd + 3;
            var authorityLength = target[authorityStart..].IndexOfAny("/?"u8);
            authorityLength = authorityLength < 0 ? target.Length - authorityStart : authorityLength;
            if (authorityLength == 0 || target.Slice(authorityStart, authorityLength).IndexOf((byte)'@') >= 0)
            {
                error = Http1Error.BadRequest("absolute-form target needs a host and no userinfo");
                return false;
            }

            head.SetHost(new Range(offset + authorityStart, offset + authorityStart + authorityLength));
            pathStart = authorityStart + authorityLength;
        }

        var query = target[pathStart..].IndexOf((byte)'?');
        var pathEnd = query < 0 ? target.Length : pathStart + query;
        var queryStart = query < 0 ? target.Length : pathEnd + 1;
        var methodRange = new Range(offset - method.Length - 1, offset - 1);
        head.SetRequestLine(methodRange, targetRange, new Range(offset + pathStart, offset + pathEnd), new Range(offset + queryStart, offset + target.Length), version);
        return true;
    }

    /// <summary>An RFC 3986 host (reg-name or IP literal) with an optional port; empty is allowed (HTTP/1.0, or an empty Host).</summary>
    internal static bool IsAuthority(ReadOnlySpan<byte> authority)
    {
        if (authority.IsEmpty)
        {
            return true;
        }

        ReadOnlySpan<byte> port;
        if (authority[0] == (byte)'[')
        {
            var close = authority.IndexOf((byte)']');
            if (close < 2 || authority[1..close].ContainsAnyExcept(IpLiteralChars))
            {
                return false;
            }

            port = authority[(close + 1)..];
        }
        else
        {
            var colon = authority.IndexOf((byte)':');
            var name = colon < 0 ? authority : authority[..colon];
            if (name.IsEmpty || name.ContainsAnyExcept(RegNameChars) || !HasValidEscapes(name))
            {
                return false;
            }

            port = colon < 0 ? default : authority[colon..];
        }

        return port.IsEmpty || (port[0] == (byte)':' && port.Length <= 6 && port[1..].IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0);
    }

    private static bool HasValidEscapes(ReadOnlySpan<byte> name)
    {
        for (var i = name.IndexOf((byte)'%'); i >= 0; i = name.IndexOf((byte)'%'))
        {
            if (i + 2 >= name.Length || !char.IsAsciiHexDigit((char)name[i + 1]) || !char.IsAsciiHexDigit((char)name[i + 2]))
            {
                return false;
            }

            name = name[(i + 3)..];
        }

        return true;
    }

    internal static bool ApplyHeaderFacts(Http1RequestHead head, in Http1Fields.Facts facts, out Http1Error error)
    {
        error = default;
        if (facts.TransferEncoding)
        {
            if (head.Version == Http1Version.Http10)
            {
                error = Http1Error.BadRequest("Transfer-Encoding in an HTTP/1.0 request");
                return false;
            }

            if (facts.ContentLength is not null)
            {
                error = Http1Error.BadRequest("both Content-Length and Transfer-Encoding");
                return false;
            }

            if (!facts.EndsChunked)
            {
                error = Http1Error.BadRequest("Transfer-Encoding must end with chunked");
                return false;
            }
        }

        var absoluteForm = !head.Target.IsEmpty && head.Target[0] != (byte)'/' && head.Target[0] != (byte)'*';
        if (facts.HostCount > 1)
        {
            error = Http1Error.BadRequest("more than one Host header");
            return false;
        }

        if (head.Version == Http1Version.Http11 && facts.HostCount == 0)
        {
            error = Http1Error.BadRequest("missing Host header");
            return false;
        }

        if (!absoluteForm && facts.HostCount == 1)
        {
            head.SetHost(facts.Host);
        }

        if (!IsAuthority(head.Host))
        {
            // "a:80@evil.com", "evil.com#.x": what one component reads as the host, another may not.
            error = Http1Error.BadRequest("the host is not a valid host[:port]");
            return false;
        }

        if (facts.UnsupportedExpectation)
        {
            error = new Http1Error(417, "only Expect: 100-continue is supported");
            return false;
        }

        var keepAlive = head.Version == Http1Version.Http11 ? !facts.ConnectionClose : facts.ConnectionKeepAlive && !facts.ConnectionClose;
        head.SetFraming(facts.ContentLength, facts.TransferEncoding);
        // Only a WebSocket upgrade is ever tunnelled: any other (h2c above all, which would give the
        // client a connection to the upstream past routes and headers) is dropped, and the request
        // goes on as a plain one, as nginx and HAProxy do.
        head.SetConnection(keepAlive, facts.ConnectionUpgrade && facts.UpgradeFields == 1 && facts.UpgradeToWebSocket, facts.ExpectContinue);
        return true;
    }

}
