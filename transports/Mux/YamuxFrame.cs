using System.Buffers;
using System.Buffers.Binary;

namespace Forwarder.Transports.Mux;

/// <summary>The four frame types of yamux.</summary>
public enum YamuxFrameType : byte
{
    /// <summary>Stream data; the length is the payload's.</summary>
    Data = 0,

    /// <summary>Grants the peer more send window on a stream; the length is the increment.</summary>
    WindowUpdate = 1,

    /// <summary>Session keep-alive and round-trip measurement; the length is an opaque value echoed back.</summary>
    Ping = 2,

    /// <summary>The sender takes no new streams; the length is a <see cref="YamuxGoAwayCode"/>.</summary>
    GoAway = 3,
}

/// <summary>Stream life-cycle flags, carried by data and window update frames (and SYN/ACK by pings).</summary>
[Flags]
public enum YamuxFlags : ushort
{
    None = 0,

    /// <summary>Opens a stream (a ping request).</summary>
    Syn = 1,

    /// <summary>Accepts a stream (a ping response).</summary>
    Ack = 2,

    /// <summary>The sender will send nothing more on the stream (half-close).</summary>
    Fin = 4,

    /// <summary>The stream is abandoned at once.</summary>
    Rst = 8,
}

/// <summary>Why a session ends, as a go-away frame says.</summary>
public enum YamuxGoAwayCode : uint
{
    Normal = 0,
    ProtocolError = 1,
    InternalError = 2,
}

/// <summary>
/// A yamux frame header: version 0, type, flags, stream id and length, 12 bytes in network
/// order, as hashicorp/yamux's spec.md lays it out.
/// </summary>
internal readonly record struct YamuxHeader(YamuxFrameType Type, YamuxFlags Flags, uint StreamId, uint Length)
{
    public const int Size = 12;

    private const byte Version = 0;

    public void Write(Span<byte> destination)
    {
        destination[0] = Version;
        destination[1] = (byte)Type;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)Flags);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], StreamId);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Length);
    }

    /// <summary>Reads a header off the front of <paramref name="buffer"/>; false when fewer than 12 bytes are there.</summary>
    /// <exception cref="YamuxProtocolException">The version or type is not one yamux defines.</exception>
    public static bool TryRead(in ReadOnlySequence<byte> buffer, out YamuxHeader header)
    {
        if (buffer.Length < Size)
        {
            header = default;
            return false;
        }

        Span<byte> bytes = stackalloc byte[Size];
        buffer.Slice(0, Size).CopyTo(bytes);
        if (bytes[0] != Version)
        {
            throw new YamuxProtocolException($"unsupported yamux version {bytes[0]}");
        }

        if (bytes[1] > (byte)YamuxFrameType.GoAway)
        {
            throw new YamuxProtocolException($"unknown frame type {bytes[1]}");
        }

        header = new YamuxHeader(
            (YamuxFrameType)bytes[1],
            (YamuxFlags)BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]),
            BinaryPrimitives.ReadUInt32BigEndian(bytes[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]));
        return true;
    }
}

/// <summary>The peer broke the protocol: the session ends with a protocol-error go-away.</summary>
public sealed class YamuxProtocolException(string message) : Exception(message);
