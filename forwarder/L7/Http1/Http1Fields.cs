using System.Buffers;
using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>
/// Header fields as requests and responses share them: one field line parsed and validated, and
/// the framing and connection facts gathered from all of them.
/// </summary>
internal static class Http1Fields
{
    /// <summary>tchar: the characters a method, header name or token may use (RFC 9110 5.6.2).</summary>
    private static readonly SearchValues<byte> TokenChars = SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>What a field value may not hold: CR, LF, NUL and the other controls but tab.</summary>
    private static readonly SearchValues<byte> NotInFieldValue = SearchValues.Create(
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127]);

    /// <summary>Whether any LF in <paramref name="bytes"/> is not preceded by CR: every CRLF holds one LF, so the counts differ exactly then.</summary>
    public static bool HasBareLineFeed(ReadOnlySpan<byte> bytes) => bytes.Count((byte)'\n') != bytes.Count("\r\n"u8);

    /// <summary>The length of the line starting at <paramref name="position"/> without its CRLF; -1 when it ends in a bare LF (or not at all).</summary>
    public static int LineLength(ReadOnlySpan<byte> bytes, int position)
    {
        var lf = bytes[position..].IndexOf((byte)'\n');
        return lf > 0 && bytes[position + lf - 1] == (byte)'\r' ? lf - 1 : -1;
    }

    /// <summary>
    /// Parses every field line from <paramref name="position"/> to the empty line that ends the
    /// head (which the caller found), into <paramref name="head"/>, each line checked to end in CRLF.
    /// </summary>
    public static bool TryParseLines(ReadOnlySpan<byte> bytes, int position, int maxFields, Http1Head head, ref Facts facts, out Http1Error error)
    {
        var fields = 0;
        while (true)
        {
            var length = LineLength(bytes, position);
            if (length < 0)
            {
                error = Http1Error.BadRequest("bare LF: lines must end with CRLF");
                return false;
            }

            if (length == 0)
            {
                head.SetConnectionNamesFields(facts.ConnectionNamesFields);
                error = default;
                return true;
            }

            if (++fields > maxFields)
            {
                error = new Http1Error(431, $"more than {maxFields} header fields");
                return false;
            }

            if (!TryParseLine(bytes, position, length, head, ref facts, out error))
            {
                return false;
            }

            position += length + 2;
        }
    }

    /// <summary>Parses the field line at <paramref name="position"/> (without its CRLF), adds its name and value ranges and kind to <paramref name="head"/>, and notes what it says.</summary>
    public static bool TryParseLine(ReadOnlySpan<byte> bytes, int position, int length, Http1Head head, ref Facts facts, out Http1Error error)
    {
        error = default;
        var line = bytes.Slice(position, length);
        if (line[0] is (byte)' ' or (byte)'\t')
        {
            error = Http1Error.BadRequest("obs-fold (a header line starting with whitespace) is not allowed");
            return false;
        }

        var colon = line.IndexOf((byte)':');
        if (colon <= 0 || !IsToken(line[..colon]))
        {
            error = Http1Error.BadRequest(colon > 0 && line[colon - 1] is (byte)' ' or (byte)'\t'
                ? "whitespace between a header name and its colon"
                : "malformed header field name");
            return false;
        }

        var valueStart = colon + 1;
        var valueEnd = line.Length;
        while (valueStart < valueEnd && line[valueStart] is (byte)' ' or (byte)'\t')
        {
            valueStart++;
        }

        while (valueEnd > valueStart && line[valueEnd - 1] is (byte)' ' or (byte)'\t')
        {
            valueEnd--;
        }

        var value = line[valueStart..valueEnd];
        if (!IsFieldValue(value))
        {
            error = Http1Error.BadRequest("control character in a header value");
            return false;
        }

        var kind = Http1FieldKinds.Of(line[..colon]);
        var valueRange = new Range(position + valueStart, position + valueEnd);
        head.AddHeader(new Range(position, position + colon), valueRange, kind);
        return kind == Http1FieldKind.Other || facts.Note(kind, value, valueRange, out error);
    }

    /// <summary>Whether the byte before the LF the reader just passed is CR.</summary>
    public static bool FollowsCarriageReturn(ref SequenceReader<byte> reader)
    {
        reader.Rewind(2);
        reader.TryRead(out var value);
        reader.Advance(1);
        return value == (byte)'\r';
    }

    /// <summary>tchar: the characters a method, header name or token may use (RFC 9110 5.6.2).</summary>
    public static bool IsToken(ReadOnlySpan<byte> value) => !value.IsEmpty && !value.ContainsAnyExcept(TokenChars);

    /// <summary>field-value: visible ASCII, spaces, tabs and obs-text; never CR, LF, NUL or other controls.</summary>
    public static bool IsFieldValue(ReadOnlySpan<byte> value) => !value.ContainsAny(NotInFieldValue);

    /// <summary>What the framing and connection headers said, gathered across all header lines.</summary>
    public struct Facts
    {
        public long? ContentLength;
        public bool TransferEncoding;
        public bool EndsChunked;
        public bool SeenChunked;
        public int HostCount;
        public Range Host;
        public bool ConnectionClose;
        public bool ConnectionKeepAlive;
        public bool ConnectionUpgrade;
        public int UpgradeFields;

        /// <summary>The (last) Upgrade field asks for WebSocket, the one protocol the proxy tunnels.</summary>
        public bool UpgradeToWebSocket;
        public bool ExpectContinue;
        public bool UnsupportedExpectation;

        /// <summary>A Connection field names an option other than keep-alive and upgrade (see <see cref="Http1Head.ConnectionNamesFields"/>).</summary>
        public bool ConnectionNamesFields;

        public bool Note(Http1FieldKind kind, ReadOnlySpan<byte> value, Range valueRange, out Http1Error error)
        {
            error = default;
            switch (kind)
            {
                case Http1FieldKind.ContentLength:
                    return NoteContentLength(value, out error);
                case Http1FieldKind.TransferEncoding:
                    return NoteTransferEncoding(value, out error);
                case Http1FieldKind.Host:
                    HostCount++;
                    Host = valueRange;
                    break;
                case Http1FieldKind.Connection:
                    foreach (var token in new TokenList(value))
                    {
                        var close = Ascii.EqualsIgnoreCase(token, "close"u8);
                        var keepAlive = Ascii.EqualsIgnoreCase(token, "keep-alive"u8);
                        var upgrade = Ascii.EqualsIgnoreCase(token, "upgrade"u8);
                        ConnectionClose |= close;
                        ConnectionKeepAlive |= keepAlive;
                        ConnectionUpgrade |= upgrade;
                        ConnectionNamesFields |= !keepAlive && !upgrade;
                    }

                    break;
                case Http1FieldKind.Upgrade:
                    UpgradeFields++;
                    UpgradeToWebSocket = Ascii.EqualsIgnoreCase(value, "websocket"u8);
                    break;
                case Http1FieldKind.Expect:
                    ExpectContinue |= Ascii.EqualsIgnoreCase(value, "100-continue"u8);
                    UnsupportedExpectation |= !value.IsEmpty && !Ascii.EqualsIgnoreCase(value, "100-continue"u8);
                    break;
            }

            return true;
        }

        /// <summary>
        /// 1*DIGIT, or a list of identical ones (a known proxy artefact); anything else, or a
        /// second header that disagrees, is how smuggling starts.
        /// </summary>
        private bool NoteContentLength(ReadOnlySpan<byte> value, out Http1Error error)
        {
            error = default;
            foreach (var item in new TokenList(value, allowEmpty: true))
            {
                if (item.IsEmpty || item.Length > 18 || item.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0)
                {
                    error = Http1Error.BadRequest("invalid Content-Length");
                    return false;
                }

                var length = long.Parse(item, provider: System.Globalization.CultureInfo.InvariantCulture);
                if (ContentLength is { } seen && seen != length)
                {
                    error = Http1Error.BadRequest("conflicting Content-Length values");
                    return false;
                }

                ContentLength = length;
            }

            return true;
        }

        private bool NoteTransferEncoding(ReadOnlySpan<byte> value, out Http1Error error)
        {
            error = default;
            foreach (var coding in new TokenList(value, allowEmpty: true))
            {
                if (coding.IsEmpty || !IsToken(coding))
                {
                    error = Http1Error.BadRequest("invalid Transfer-Encoding");
                    return false;
                }

                var chunked = Ascii.EqualsIgnoreCase(coding, "chunked"u8);
                if (chunked && SeenChunked)
                {
                    error = Http1Error.BadRequest("chunked applied twice");
                    return false;
                }

                SeenChunked |= chunked;

                // Only the last coding may be chunked; a later one undoes "ends with chunked".
                EndsChunked = chunked;
                TransferEncoding = true;
            }

            return true;
        }
    }

    /// <summary>Splits a comma-separated list, trimming whitespace around items.</summary>
    public ref struct TokenList(ReadOnlySpan<byte> value, bool allowEmpty = false)
    {
        private ReadOnlySpan<byte> _rest = value;
        private bool _done = value.IsEmpty && !allowEmpty;

        public ReadOnlySpan<byte> Current { get; private set; }

        public readonly TokenList GetEnumerator() => this;

        public bool MoveNext()
        {
            while (!_done)
            {
                var comma = _rest.IndexOf((byte)',');
                Current = (comma < 0 ? _rest : _rest[..comma]).Trim(" \t"u8);
                _done = comma < 0;
                _rest = comma < 0 ? default : _rest[(comma + 1)..];
                if (!Current.IsEmpty || allowEmpty)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
