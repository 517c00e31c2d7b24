using System.Buffers;
using System.Buffers.Binary;

namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// One frame as <see cref="Http2FrameReader"/> read and validated it: its header and its payload
/// with padding and the deprecated priority fields already taken off, so DATA's payload is the
/// data and HEADERS' the header block fragment. The payload is a slice of the connection's input,
/// valid until that is advanced. The accessors read the fixed fields of each type.
/// </summary>
internal readonly struct Http2Frame(Http2FrameHeader header, ReadOnlySequence<byte> payload, int flowControlledLength)
{
    public Http2FrameHeader Header { get; } = header;

    public ReadOnlySequence<byte> Payload { get; } = payload;

    public byte Type => Header.Type;

    public int StreamId => Header.StreamId;

    /// <summary>What the frame counts against flow control: a DATA frame's whole length, padding included (RFC 9113 6.1).</summary>
    public int FlowControlledLength { get; } = flowControlledLength;

    public bool EndStream => Header.HasFlag(Http2Frames.EndStream);

    public bool EndHeaders => Header.HasFlag(Http2Frames.EndHeaders);

    public bool IsAck => Header.HasFlag(Http2Frames.Ack);

    /// <summary>RST_STREAM's error code.</summary>
    public Http2ErrorCode RstStreamErrorCode => (Http2ErrorCode)ReadUInt32(0);

    /// <summary>WINDOW_UPDATE's increment (never 0: the reader refuses that).</summary>
    public int WindowIncrement => (int)(ReadUInt32(0) & 0x7FFF_FFFF);

    /// <summary>PING's 8 opaque bytes.</summary>
    public ulong PingData => ReadUInt64();

    /// <summary>GOAWAY's last stream id.</summary>
    public int GoAwayLastStreamId => (int)(ReadUInt32(0) & 0x7FFF_FFFF);

    public Http2ErrorCode GoAwayErrorCode => (Http2ErrorCode)ReadUInt32(4);

    public ReadOnlySequence<byte> GoAwayDebugData => Payload.Slice(8);

    /// <summary>PUSH_PROMISE's promised stream (its header block fragment is <see cref="Payload"/>).</summary>
    public int PromisedStreamId { get; init; }

    /// <summary>SETTINGS' parameters, in the order sent (later ones win: RFC 9113 6.5.3).</summary>
    public SettingsEnumerator Settings => new(Payload);

    private uint ReadUInt32(int offset)
    {
        Span<byte> bytes = stackalloc byte[4];
        Payload.Slice(offset, 4).CopyTo(bytes);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    private ulong ReadUInt64()
    {
        Span<byte> bytes = stackalloc byte[8];
        Payload.Slice(0, 8).CopyTo(bytes);
        return BinaryPrimitives.ReadUInt64BigEndian(bytes);
    }

    internal struct SettingsEnumerator(ReadOnlySequence<byte> payload)
    {
        private ReadOnlySequence<byte> _rest = payload;

        public Http2Setting Current { get; private set; }

        public readonly SettingsEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            if (_rest.Length < Http2Setting.Length)
            {
                return false;
            }

            Span<byte> bytes = stackalloc byte[Http2Setting.Length];
            _rest.Slice(0, Http2Setting.Length).CopyTo(bytes);
            _rest = _rest.Slice(Http2Setting.Length);
            Current = new Http2Setting((Http2SettingId)BinaryPrimitives.ReadUInt16BigEndian(bytes), BinaryPrimitives.ReadUInt32BigEndian(bytes[2..]));
            return true;
        }
    }
}
