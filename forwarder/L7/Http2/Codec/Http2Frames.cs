namespace Forwarder.L7.Http2.Codec;

/// <summary>HTTP/2 frame types, flags and fixed sizes (RFC 9113 4, 6).</summary>
internal static class Http2Frames
{
    public const byte Data = 0x0;
    public const byte Headers = 0x1;
    public const byte Priority = 0x2;
    public const byte RstStream = 0x3;
    public const byte Settings = 0x4;
    public const byte PushPromise = 0x5;
    public const byte Ping = 0x6;
    public const byte GoAway = 0x7;
    public const byte WindowUpdate = 0x8;
    public const byte Continuation = 0x9;

    /// <summary>ACK on SETTINGS and PING.</summary>
    public const byte Ack = 0x1;

    /// <summary>END_STREAM on DATA and HEADERS.</summary>
    public const byte EndStream = 0x1;

    /// <summary>END_HEADERS on HEADERS, PUSH_PROMISE and CONTINUATION.</summary>
    public const byte EndHeaders = 0x4;

    /// <summary>PADDED on DATA, HEADERS and PUSH_PROMISE.</summary>
    public const byte Padded = 0x8;

    /// <summary>PRIORITY on HEADERS: the deprecated priority fields precede the header block.</summary>
    public const byte PriorityFlag = 0x20;

    public const int HeaderLength = 9;

    /// <summary>The smallest SETTINGS_MAX_FRAME_SIZE, and every peer's until it says more.</summary>
    public const int DefaultMaxFrameSize = 16_384;

    public const int MaxAllowedFrameSize = 16_777_215;

    public const int DefaultWindowSize = 65_535;

    public const int MaxWindowSize = int.MaxValue;
}

/// <summary>A frame's 9-byte header: enough to know what the frame is without its payload.</summary>
internal readonly record struct Http2FrameHeader(int Length, byte Type, byte Flags, int StreamId)
{
    public bool HasFlag(byte flag) => (Flags & flag) != 0;
}
