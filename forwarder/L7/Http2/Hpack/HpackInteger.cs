using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Hpack;

/// <summary>HPACK's prefixed integers (RFC 7541 5.1), limited to what fits an int.</summary>
internal static class HpackInteger
{
    /// <summary>
    /// Reads an integer whose first byte is at <paramref name="position"/> with an N-bit prefix, and
    /// moves past it. A COMPRESSION_ERROR if it is cut short or exceeds int.MaxValue.
    /// </summary>
    public static int Read(ReadOnlySpan<byte> source, ref int position, int prefixBits)
    {
        var max = (1 << prefixBits) - 1;
        var value = source[position++] & max;
        if (value < max)
        {
            return value;
        }

        long result = value;
        for (var shift = 0; ; shift += 7)
        {
            if (position >= source.Length)
            {
                throw new Http2ConnectionException(Http2ErrorCode.CompressionError, "HPACK: integer cut short");
            }

            var b = source[position++];
            result += (long)(b & 0x7F) << shift;
            if (result > int.MaxValue || shift > 28)
            {
                throw new Http2ConnectionException(Http2ErrorCode.CompressionError, "HPACK: integer too large");
            }

            if ((b & 0x80) == 0)
            {
                return (int)result;
            }
        }
    }

    /// <summary>Writes <paramref name="value"/> with an N-bit prefix, OR-ing <paramref name="flags"/> into the first byte; the bytes written.</summary>
    public static int Write(Span<byte> destination, int value, int prefixBits, byte flags)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            destination[0] = (byte)(flags | value);
            return 1;
        }

        destination[0] = (byte)(flags | max);
        var written = 1;
        value -= max;
        while (value >= 0x80)
        {
            destination[written++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[written++] = (byte)value;
        return written;
    }
}
