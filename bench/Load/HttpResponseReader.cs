using System.Buffers.Text;
using System.Text;

namespace Forwarder.Bench.Load;

/// <summary>What reading a response from the bytes received so far came to.</summary>
internal enum ResponseProgress
{
    /// <summary>More bytes are needed.</summary>
    NeedMore,

    /// <summary>A whole response was read; <see cref="HttpResponseReader.Status"/> has its status.</summary>
    Complete,

    /// <summary>The bytes are not an HTTP/1.1 response we can frame.</summary>
    Malformed,
}

/// <summary>
/// Frames HTTP/1.x responses on a keep-alive connection with as little work as possible: it finds
/// the status, the framing headers (Content-Length, Transfer-Encoding: chunked, Connection: close)
/// and skips the body. One instance per connection, reset for every response.
/// </summary>
internal sealed class HttpResponseReader
{
    private const int MaxHeadBytes = 64 * 1024;

    private byte[] _partial = new byte[256];
    private int _partialLength;
    private State _state;
    private long _remaining;
    private int _headBytes;
    private bool _chunked;
    private bool _hasLength;

    private enum State
    {
        StatusLine,
        Headers,
        Body,
        UntilClose,
        ChunkSize,
        ChunkData,
        ChunkDataEnd,
        Trailers,
    }

    public int Status { get; private set; }

    /// <summary>The server will close the connection after this response.</summary>
    public bool CloseAfter { get; private set; }

    /// <summary>The body runs until the connection closes (neither length nor chunking was given).</summary>
    public bool ReadsUntilClose => _state == State.UntilClose;

    public void Reset()
    {
        _state = State.StatusLine;
        _remaining = 0;
        _headBytes = 0;
        _partialLength = 0;
        _chunked = false;
        _hasLength = false;
        Status = 0;
        CloseAfter = false;
    }

    /// <summary>Consumes bytes of one response; <paramref name="consumed"/> says how many belong to it.</summary>
    public ResponseProgress Read(ReadOnlySpan<byte> data, out int consumed)
    {
        consumed = 0;
        while (true)
        {
            if (consumed == data.Length)
            {
                return ResponseProgress.NeedMore;
            }

            switch (_state)
            {
                case State.StatusLine or State.Headers or State.Trailers:
                {
                    if (!TryTakeLine(data, ref consumed, out var line))
                    {
                        return _headBytes > MaxHeadBytes ? ResponseProgress.Malformed : ResponseProgress.NeedMore;
                    }

                    if (_headBytes > MaxHeadBytes)
                    {
                        return ResponseProgress.Malformed;
                    }

                    if (line.Length > 0 && line[^1] == (byte)'\r')
                    {
                        line = line[..^1];
                    }

                    var progress = _state switch
                    {
                        State.StatusLine => OnStatusLine(line),
                        State.Headers => OnHeaderLine(line),
                        _ => line.Length == 0 ? ResponseProgress.Complete : ResponseProgress.NeedMore,
                    };
                    if (progress != ResponseProgress.NeedMore)
                    {
                        return progress;
                    }

                    break;
                }

                case State.Body or State.ChunkData:
                {
                    var take = (int)Math.Min(_remaining, data.Length - consumed);
                    consumed += take;
                    _remaining -= take;
                    if (_remaining > 0)
                    {
                        return ResponseProgress.NeedMore;
                    }

                    if (_state == State.Body)
                    {
                        return ResponseProgress.Complete;
                    }

                    _state = State.ChunkDataEnd;
                    break;
                }

                case State.ChunkDataEnd or State.ChunkSize:
                {
                    if (!TryTakeLine(data, ref consumed, out var line))
                    {
                        return _headBytes > MaxHeadBytes ? ResponseProgress.Malformed : ResponseProgress.NeedMore;
                    }

                    if (_state == State.ChunkDataEnd)
                    {
                        if (line.Length > 1 || (line.Length == 1 && line[0] != (byte)'\r'))
                        {
                            return ResponseProgress.Malformed;
                        }

                        _state = State.ChunkSize;
                        break;
                    }

                    var progress = OnChunkSize(line);
                    if (progress != ResponseProgress.NeedMore)
                    {
                        return progress;
                    }

                    break;
                }

                case State.UntilClose:
                    consumed = data.Length;
                    return ResponseProgress.NeedMore;
            }
        }
    }

    /// <summary>
    /// The next line, without its LF; a line split across reads is gathered in a small buffer
    /// first (whole lines, the usual case, are read in place).
    /// </summary>
    private bool TryTakeLine(ReadOnlySpan<byte> data, ref int consumed, out ReadOnlySpan<byte> line)
    {
        var rest = data[consumed..];
        var end = rest.IndexOf((byte)'\n');
        var take = end < 0 ? rest.Length : end;
        _headBytes += take + (end < 0 ? 0 : 1);
        consumed += take + (end < 0 ? 0 : 1);
        if (end >= 0 && _partialLength == 0)
        {
            line = rest[..end];
            return true;
        }

        if (_partialLength + take > MaxHeadBytes)
        {
            _headBytes = MaxHeadBytes + 1;
            line = default;
            return false;
        }

        if (_partialLength + take > _partial.Length)
        {
            Array.Resize(ref _partial, Math.Min(MaxHeadBytes, Math.Max(_partial.Length * 2, _partialLength + take)));
        }

        rest[..take].CopyTo(_partial.AsSpan(_partialLength));
        _partialLength += take;
        if (end < 0)
        {
            line = default;
            return false;
        }

        line = _partial.AsSpan(0, _partialLength);
        _partialLength = 0;
        return true;
    }

    private ResponseProgress OnStatusLine(ReadOnlySpan<byte> line)
    {
        // HTTP/1.x SSS [reason]
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || line[8] != (byte)' '
            || !Utf8Parser.TryParse(line.Slice(9, 3), out int status, out var digits) || digits != 3)
        {
            return ResponseProgress.Malformed;
        }

        Status = status;
        CloseAfter = line[7] == (byte)'0';
        _state = State.Headers;
        return ResponseProgress.NeedMore;
    }

    private ResponseProgress OnHeaderLine(ReadOnlySpan<byte> line)
    {
        if (line.Length == 0)
        {
            return OnHeadEnd();
        }

        var colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            return ResponseProgress.Malformed;
        }

        var name = line[..colon];
        var value = line[(colon + 1)..].Trim(" \t"u8);
        if (name.Length == 14 && Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
        {
            if (!Utf8Parser.TryParse(value, out long length, out var used) || used != value.Length || length < 0)
            {
                return ResponseProgress.Malformed;
            }

            _remaining = length;
            _hasLength = true;
        }
        else if (name.Length == 17 && Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
        {
            _chunked = value.Length >= 7 && Ascii.EqualsIgnoreCase(value[^7..], "chunked"u8);
        }
        else if (name.Length == 10 && Ascii.EqualsIgnoreCase(name, "Connection"u8))
        {
            if (Ascii.EqualsIgnoreCase(value, "close"u8))
            {
                CloseAfter = true;
            }
            else if (Ascii.EqualsIgnoreCase(value, "keep-alive"u8))
            {
                CloseAfter = false;
            }
        }

        return ResponseProgress.NeedMore;
    }

    private ResponseProgress OnHeadEnd()
    {
        _headBytes = 0;

        // 1xx, 204 and 304 have no body whatever the headers say.
        if (Status is < 200 or 204 or 304)
        {
            if (Status < 200)
            {
                // An interim response: the real one follows.
                var close = CloseAfter;
                Reset();
                CloseAfter = close;
                return ResponseProgress.NeedMore;
            }

            return ResponseProgress.Complete;
        }

        if (_chunked)
        {
            _state = State.ChunkSize;
            return ResponseProgress.NeedMore;
        }

        if (_hasLength)
        {
            if (_remaining == 0)
            {
                return ResponseProgress.Complete;
            }

            _state = State.Body;
            return ResponseProgress.NeedMore;
        }

        CloseAfter = true;
        _state = State.UntilClose;
        return ResponseProgress.NeedMore;
    }

    private ResponseProgress OnChunkSize(ReadOnlySpan<byte> line)
    {
        if (line.Length > 0 && line[^1] == (byte)'\r')
        {
            line = line[..^1];
        }

        var extension = line.IndexOf((byte)';');
        if (extension >= 0)
        {
            line = line[..extension];
        }

        line = line.Trim(" \t"u8);
        if (line.Length is 0 or > 15 || !Utf8Parser.TryParse(line, out long size, out var used, 'X') || used != line.Length)
        {
            return ResponseProgress.Malformed;
        }

        _headBytes = 0;
        if (size == 0)
        {
            _state = State.Trailers;
            return ResponseProgress.NeedMore;
        }

        _remaining = size;
        _state = State.ChunkData;
        return ResponseProgress.NeedMore;
    }
}
