using System.Buffers.Binary;

namespace Forwarder.Bench.Load;

/// <summary>
/// The little of HTTP/2 (RFC 9113) and HPACK (RFC 7541) the h2c load client and the h2c backend
/// speak: frame headers, the preface, SETTINGS, PING and WINDOW_UPDATE, and HPACK integers. Each
/// side encodes with static-table indices and literals only and decodes no more than it needs.
/// </summary>
internal static class H2c
{
    public const int FrameHeaderLength = 9;

    /// <summary>The largest frame either side accepts: SETTINGS_MAX_FRAME_SIZE's default, which neither raises.</summary>
    public const int MaxFrameLength = 16384;

    public const byte Data = 0x0;
    public const byte Headers = 0x1;
    public const byte RstStream = 0x3;
    public const byte Settings = 0x4;
    public const byte PushPromise = 0x5;
    public const byte Ping = 0x6;
    public const byte GoAway = 0x7;
    public const byte WindowUpdate = 0x8;
    public const byte Continuation = 0x9;

    public const byte EndStream = 0x1;
    public const byte Ack = 0x1;
    public const byte EndHeaders = 0x4;
    public const byte Padded = 0x8;
    public const byte Priority = 0x20;

    public const ushort SettingHeaderTableSize = 0x1;
    public const ushort SettingEnablePush = 0x2;
    public const ushort SettingInitialWindowSize = 0x4;

    /// <summary>The largest flow-control window (2^31 − 1).</summary>
    public const int MaxWindow = int.MaxValue;

    /// <summary>Every connection's window before any WINDOW_UPDATE.</summary>
    public const int DefaultWindow = 65535;

    public static ReadOnlySpan<byte> ClientPreface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    public static void WriteFrameHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & int.MaxValue);
    }

    /// <summary>A frame's header: its payload length, type, flags and stream (the reserved bit dropped).</summary>
    public static (int Length, byte Type, byte Flags, int StreamId) ReadFrameHeader(ReadOnlySpan<byte> source)
        => ((source[0] << 16) | (source[1] << 8) | source[2], source[3], source[4], BinaryPrimitives.ReadInt32BigEndian(source[5..]) & int.MaxValue);

    /// <summary>Writes a whole frame with a 4-byte payload (WINDOW_UPDATE increment, RST_STREAM code); returns its length.</summary>
    public static int WriteUInt32Frame(Span<byte> destination, byte type, int streamId, uint value)
    {
        WriteFrameHeader(destination, 4, type, 0, streamId);
        BinaryPrimitives.WriteUInt32BigEndian(destination[FrameHeaderLength..], value);
        return FrameHeaderLength + 4;
    }

    /// <summary>A SETTINGS frame carrying the settings given.</summary>
    public static byte[] SettingsFrame(params ReadOnlySpan<(ushort Id, uint Value)> settings)
    {
        var frame = new byte[FrameHeaderLength + (6 * settings.Length)];
        WriteFrameHeader(frame, 6 * settings.Length, Settings, 0, 0);
        for (var i = 0; i < settings.Length; i++)
        {
            var at = frame.AsSpan(FrameHeaderLength + (6 * i));
            BinaryPrimitives.WriteUInt16BigEndian(at, settings[i].Id);
            BinaryPrimitives.WriteUInt32BigEndian(at[2..], settings[i].Value);
        }

        return frame;
    }

    /// <summary>A HEADERS or DATA payload without its padding and priority fields; false when they claim more than the frame holds.</summary>
    public static bool TryUnpad(ReadOnlySpan<byte> payload, byte type, byte flags, out ReadOnlySpan<byte> content)
    {
        content = payload;
        var padding = 0;
        if ((flags & Padded) != 0)
        {
            if (content.IsEmpty)
            {
                return false;
            }

            padding = content[0];
            content = content[1..];
        }

        if (type == Headers && (flags & Priority) != 0)
        {
            if (content.Length < 5)
            {
                return false;
            }

            content = content[5..];
        }

        if (padding > content.Length)
        {
            return false;
        }

        content = content[..^padding];
        return true;
    }

    /// <summary>Appends an HPACK integer with an N-bit prefix (RFC 7541 5.1), the prefix's high bits set to <paramref name="pattern"/>.</summary>
    public static void WriteInteger(List<byte> destination, byte pattern, int prefixBits, int value)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            destination.Add((byte)(pattern | value));
            return;
        }

        destination.Add((byte)(pattern | max));
        for (value -= max; value >= 0x80; value >>= 7)
        {
            destination.Add((byte)((value & 0x7F) | 0x80));
        }

        destination.Add((byte)value);
    }

    /// <summary>Reads an HPACK integer with an N-bit prefix; false when the block ends first or it overflows.</summary>
    public static bool TryReadInteger(ReadOnlySpan<byte> block, ref int at, int prefixBits, out int value)
    {
        var max = (1 << prefixBits) - 1;
        value = block[at++] & max;
        if (value < max)
        {
            return true;
        }

        for (var shift = 0; shift <= 21; shift += 7)
        {
            if (at == block.Length)
            {
                return false;
            }

            var next = block[at++];
            value += (next & 0x7F) << shift;
            if ((next & 0x80) == 0)
            {
                return true;
            }
        }

        return false;
    }
}
