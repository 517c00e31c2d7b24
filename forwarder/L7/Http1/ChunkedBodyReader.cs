using System.Buffers;
using System.Globalization;

namespace Forwarder.L7.Http1;

/// <summary>
/// Walks a chunked body as it streams through the proxy: validates every chunk-size line, the
/// CRLF after each chunk and the trailer section, and says where the body ends, so the bytes can
/// be forwarded as they are without ever holding the whole body. A size that is not plain hex,
/// a chunk that overruns its CRLF, or a bare LF refuses the request with 400: these are the
/// shapes a second parser downstream might frame differently.
/// </summary>
internal sealed class ChunkedBodyReader
{
    private const int MaxLine = 4096;

    /// <summary>At most 15 hex digits: any size they spell fits in a long.</summary>
    private const int MaxSizeDigits = 15;
    private const int MaxTrailerBytes = 16 * 1024;

    private State _state;
    private long _remaining;
    private int _trailerBytes;

    private enum State
    {
        Size,
        Data,
        DataEnd,
        Trailers,
        Done,
    }

    /// <summary>Data bytes (chunk payloads, without framing) seen so far.</summary>
    public long DataBytes { get; private set; }

    /// <summary>Data bytes seen plus those the current chunk's size line still promises: over a limit as soon as that line is read.</summary>
    public long DeclaredBytes => DataBytes + _remaining;

    public bool IsComplete => _state == State.Done;

    public void Reset()
    {
        _state = State.Size;
        _remaining = 0;
        _trailerBytes = 0;
        DataBytes = 0;
    }

    /// <summary>
    /// Consumes what it can of <paramref name="buffer"/>: everything up to <paramref name="consumed"/>
    /// belongs to the body and may be forwarded. A line split across reads is left unconsumed;
    /// call again from <paramref name="consumed"/> once more bytes have arrived.
    /// </summary>
    /// <param name="data">When given, the chunks' data (no framing, no trailers) is copied here as it passes: de-chunking.</param>
    public Http1ParseStatus Advance(in ReadOnlySequence<byte> buffer, out SequencePosition consumed, out Http1Error error, IBufferWriter<byte>? data = null)
    {
        error = default;
        var reader = new SequenceReader<byte>(buffer);
        var status = Run(ref reader, data, out error);
        consumed = reader.Position;
        return status;
    }

    private Http1ParseStatus Run(ref SequenceReader<byte> reader, IBufferWriter<byte>? data, out Http1Error error)
    {
        error = default;
        while (true)
        {
            switch (_state)
            {
                case State.Size:
                    if (!TryReadLine(ref reader, out var sizeLine, out error))
                    {
                        if (error.Status == 0 && HasTooManyDigits(reader.UnreadSequence))
                        {
                            // Refused as the digits come, not once the line ends (or fills its limit).
                            error = Http1Error.BadRequest("invalid chunk size");
                        }

                        return error.Status == 0 ? Http1ParseStatus.NeedMore : Http1ParseStatus.Error;
                    }

                    if (!TryParseSize(sizeLine, out var size, out error))
                    {
                        return Http1ParseStatus.Error;
                    }

                    (_state, _remaining) = size == 0 ? (State.Trailers, 0L) : (State.Data, size);
                    break;

                case State.Data:
                    var take = Math.Min(_remaining, reader.Remaining);
                    if (data is not null)
                    {
                        foreach (var segment in reader.UnreadSequence.Slice(0, take))
                        {
                            data.Write(segment.Span);
                        }
                    }

                    reader.Advance(take);
                    _remaining -= take;
                    DataBytes += take;
                    if (_remaining > 0)
                    {
                        return Http1ParseStatus.NeedMore;
                    }

                    _state = State.DataEnd;
                    break;

                case State.DataEnd:
                    if (reader.Remaining < 2)
                    {
                        if (reader.Remaining == 1 && reader.TryPeek(out var first) && first != (byte)'\r')
                        {
                            error = Http1Error.BadRequest("chunk data longer than its size");
                            return Http1ParseStatus.Error;
                        }

                        return Http1ParseStatus.NeedMore;
                    }

                    if (!reader.IsNext("\r\n"u8, advancePast: true))
                    {
                        error = Http1Error.BadRequest("chunk data longer than its size");
                        return Http1ParseStatus.Error;
                    }

                    _state = State.Size;
                    break;

                case State.Trailers:
                    var start = reader.Consumed;
                    if (!TryReadLine(ref reader, out var trailer, out error))
                    {
                        return error.Status == 0 ? Http1ParseStatus.NeedMore : Http1ParseStatus.Error;
                    }

                    _trailerBytes += (int)(reader.Consumed - start);
                    if (_trailerBytes > MaxTrailerBytes)
                    {
                        error = new Http1Error(431, "trailer section too large");
                        return Http1ParseStatus.Error;
                    }

                    if (trailer.IsEmpty)
                    {
                        _state = State.Done;
                        return Http1ParseStatus.Complete;
                    }

                    if (!IsTrailerField(trailer))
                    {
                        error = Http1Error.BadRequest("malformed trailer field");
                        return Http1ParseStatus.Error;
                    }

                    break;

                case State.Done:
                    return Http1ParseStatus.Complete;
            }
        }
    }

    /// <summary>Reads one CRLF-terminated line (without the CRLF); false with no error when it is not complete yet.</summary>
    private static bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySpan<byte> line, out Http1Error error)
    {
        error = default;
        line = default;
        if (!reader.TryReadTo(out ReadOnlySequence<byte> sequence, (byte)'\n'))
        {
            if (reader.Remaining > MaxLine)
            {
                error = Http1Error.BadRequest("chunk line too long");
            }

            return false;
        }

        if (sequence.Length > MaxLine)
        {
            error = Http1Error.BadRequest("chunk line too long");
            return false;
        }

        var bytes = sequence.IsSingleSegment ? sequence.FirstSpan : sequence.ToArray();
        if (bytes.IsEmpty || bytes[^1] != (byte)'\r')
        {
            error = Http1Error.BadRequest("bare LF: chunk lines must end with CRLF");
            return false;
        }

        line = bytes[..^1];
        return true;
    }

    /// <summary>1*HEXDIG, then optional extensions (";name[=value]"), nothing else; at most 15 digits, so no size overflows.</summary>
    /// <summary>A size line still arriving that already has more hex digits than a size may (see <see cref="TryParseSize"/>).</summary>
    private static bool HasTooManyDigits(in ReadOnlySequence<byte> unread)
    {
        if (unread.Length <= MaxSizeDigits)
        {
            return false;
        }

        Span<byte> start = stackalloc byte[MaxSizeDigits + 1];
        unread.Slice(0, start.Length).CopyTo(start);
        return !start.ContainsAnyExcept("0123456789abcdefABCDEF"u8);
    }

    private static bool TryParseSize(ReadOnlySpan<byte> line, out long size, out Http1Error error)
    {
        size = 0;
        error = default;
        var extensions = line.IndexOf((byte)';');
        var digits = extensions < 0 ? line : line[..extensions];
        if (digits.IsEmpty || digits.Length > MaxSizeDigits || digits.IndexOfAnyExcept("0123456789abcdefABCDEF"u8) >= 0
            || !long.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out size))
        {
            error = Http1Error.BadRequest("invalid chunk size");
            return false;
        }

        if (extensions >= 0 && line[(extensions + 1)..].IndexOfAnyInRange((byte)0, (byte)0x1f) >= 0)
        {
            error = Http1Error.BadRequest("control character in a chunk extension");
            return false;
        }

        return true;
    }

    private static bool IsTrailerField(ReadOnlySpan<byte> line)
    {
        var colon = line.IndexOf((byte)':');
        return colon > 0 && Http1Fields.IsToken(line[..colon])
            && line[(colon + 1)..].IndexOfAnyInRange((byte)0, (byte)0x08) < 0
            && line[(colon + 1)..].IndexOfAnyInRange((byte)0x0a, (byte)0x1f) < 0;
    }
}
