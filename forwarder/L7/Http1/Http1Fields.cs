using System.Buffers;
using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>Where parsed header fields go: a request or a response head.</summary>
internal interface IHttp1FieldSink
{
    /// <summary>Records one field's name and value as ranges of the head's bytes.</summary>
    void AddHeader(Range name, Range value);
}

/// <summary>
/// Header fields as requests and responses share them: one field line parsed and validated, and
/// the framing and connection facts gathered from all of them.
/// </summary>
internal static class Http1Fields
{
    /// <summary>Whether any LF in the head is not preceded by CR.</summary>
    public static bool HasBareLineFeed(ReadOnlySpan<byte> bytes)
    {
        for (var lf = bytes.IndexOf((byte)'\n'); lf >= 0; lf = bytes[(lf + 1)..].IndexOf((byte)'\n') is var next and >= 0 ? lf + 1 + next : -1)
        {
            if (lf == 0 || bytes[lf - 1] != (byte)'\r')
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Parses every field line from <paramref name="position"/> to the empty line that ends the head (all CRLF-checked already).</summary>
    public static bool TryParseLines(ReadOnlySpan<byte> bytes, int position, int maxFields, IHttp1FieldSink sink, ref Facts facts, out Http1Error error)
    {
        var fields = 0;
        while (true)
        {
            var length = bytes[position..].IndexOf((byte)'\n') - 1;
            if (length == 0)
            {
                error = default;
                return true;
            }

            if (++fields > maxFields)
            {
                error = new Http1Error(431, $"more than {maxFields} header fields");
                return false;
            }

            if (!TryParseLine(bytes, position, length, sink, ref facts, out error))
            {
                return false;
            }

            position += length + 2;
        }
    }

    /// <summary>Parses the field line at <paramref name="position"/> (without its CRLF), hands its name and value ranges to <paramref name="sink"/>, and notes what it says.</summary>
    public static bool TryParseLine(ReadOnlySpan<byte> bytes, int position, int length, IHttp1FieldSink sink, ref Facts facts, out Http1Error error)
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

        var name = line[..colon];
        sink.AddHeader(new Range(position, position + colon), new Range(position + valueStart, position + valueEnd));
        return facts.Note(name, value, new Range(position + valueStart, position + valueEnd), out error);
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
    public static bool IsToken(ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit((char)c) || c is (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*'
                or (byte)'+' or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>field-value: visible ASCII, spaces, tabs and obs-text; never CR, LF, NUL or other controls.</summary>
    public static bool IsFieldValue(ReadOnlySpan<byte> value)
    {
        foreach (var c in value)
        {
            if ((c < 0x20 && c != (byte)'\t') || c == 0x7f)
            {
                return false;
            }
        }

        return true;
    }
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
        public bool UpgradeHeader;
        public bool ExpectContinue;
        public bool UnsupportedExpectation;

        public bool Note(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, Range valueRange, out Http1Error error)
        {
            error = default;
            if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                return NoteContentLength(value, out error);
            }

            if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
            {
                return NoteTransferEncoding(value, out error);
            }

            if (Ascii.EqualsIgnoreCase(name, "host"u8))
            {
                HostCount++;
                Host = valueRange;
            }
            else if (Ascii.EqualsIgnoreCase(name, "connection"u8))
            {
                foreach (var token in new TokenList(value))
                {
                    ConnectionClose |= Ascii.EqualsIgnoreCase(token, "close"u8);
                    ConnectionKeepAlive |= Ascii.EqualsIgnoreCase(token, "keep-alive"u8);
                    ConnectionUpgrade |= Ascii.EqualsIgnoreCase(token, "upgrade"u8);
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "upgrade"u8))
            {
                UpgradeHeader = !value.IsEmpty;
            }
            else if (Ascii.EqualsIgnoreCase(name, "expect"u8))
            {
                ExpectContinue |= Ascii.EqualsIgnoreCase(value, "100-continue"u8);
                UnsupportedExpectation |= !value.IsEmpty && !Ascii.EqualsIgnoreCase(value, "100-continue"u8);
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
