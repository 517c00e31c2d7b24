using System.Buffers;
using System.Buffers.Binary;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2;

/// <summary>What <see cref="Http2FrameScanner"/> tells as frames pass; returning false stops the scan.</summary>
internal interface IHttp2FrameObserver
{
    /// <summary>A frame's header has fully arrived (its payload may not have).</summary>
    bool FrameStarted(in Http2FrameHeader frame);

    /// <summary>The frame's payload has passed too.</summary>
    bool FrameEnded(in Http2FrameHeader frame);
}

/// <summary>
/// Follows the frames of one direction of an HTTP/2 connection as its bytes pass, reading only
/// the 9-byte frame headers and stepping over payloads without copying them. Bytes come in any
/// split; a header cut across reads is kept until its last byte arrives.
/// </summary>
internal sealed class Http2FrameScanner(int skipFirst)
{
    private readonly byte[] _header = new byte[Http2Frames.HeaderLength];
    private int _headerBytes;
    private long _skip = skipFirst;
    private Http2FrameHeader _current;
    private bool _inPayload;

    /// <summary>Scans <paramref name="bytes"/>, the next bytes of the stream; false if the observer stopped it.</summary>
    public bool Scan(in ReadOnlySequence<byte> bytes, IHttp2FrameObserver observer)
    {
        foreach (var segment in bytes)
        {
            var span = segment.Span;
            while (!span.IsEmpty)
            {
                if (_skip > 0)
                {
                    var step = (int)Math.Min(_skip, span.Length);
                    span = span[step..];
                    _skip -= step;
                    if (_skip > 0)
                    {
                        break;
                    }

                    if (_inPayload)
                    {
                        _inPayload = false;
                        if (!observer.FrameEnded(_current))
                        {
                            return false;
                        }
                    }

                    continue;
                }

                var take = Math.Min(Http2Frames.HeaderLength - _headerBytes, span.Length);
                span[..take].CopyTo(_header.AsSpan(_headerBytes));
                span = span[take..];
                _headerBytes += take;
                if (_headerBytes < Http2Frames.HeaderLength)
                {
                    break;
                }

                _headerBytes = 0;
                _current = new Http2FrameHeader(
                    _header[0] << 16 | _header[1] << 8 | _header[2],
                    _header[3],
                    _header[4],
                    (int)(BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(5)) & 0x7FFF_FFFF));
                if (!observer.FrameStarted(_current))
                {
                    return false;
                }

                if (_current.Length == 0)
                {
                    if (!observer.FrameEnded(_current))
                    {
                        return false;
                    }
                }
                else
                {
                    _skip = _current.Length;
                    _inPayload = true;
                }
            }
        }

        return true;
    }
}
