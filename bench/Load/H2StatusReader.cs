namespace Forwarder.Bench.Load;

/// <summary>
/// Reads the <c>:status</c> of an HTTP/2 response from its header block, which RFC 9113 8.3 puts
/// first. The load client announces a dynamic table of size 0, so the field is a static-table
/// index (200, 204, 206, 304, 400, 404, 500) or a literal whose name is <c>:status</c>'s index and
/// whose value is three digits, plain or Huffman-coded (digits are the table's 5- and 6-bit codes).
/// </summary>
internal static class H2StatusReader
{
    private static readonly int[] StaticStatuses = [200, 204, 206, 304, 400, 404, 500];

    /// <summary>The status; 0 when the block does not start with one this reader knows.</summary>
    public static int Read(ReadOnlySpan<byte> block)
    {
        var at = 0;

        // Dynamic table size updates (001xxxxx) may open a block: the encoder acknowledging our size 0.
        while (at < block.Length && (block[at] & 0xE0) == 0x20)
        {
            if (!H2c.TryReadInteger(block, ref at, 5, out _))
            {
                return 0;
            }
        }

        if (at == block.Length)
        {
            return 0;
        }

        var first = block[at];
        var prefix = (first & 0x80) != 0 ? 7 : (first & 0x40) != 0 ? 6 : 4;
        if (!H2c.TryReadInteger(block, ref at, prefix, out var index) || index is < 8 or > 14)
        {
            return 0;
        }

        if (prefix == 7)
        {
            return StaticStatuses[index - 8];
        }

        if (at == block.Length)
        {
            return 0;
        }

        var huffman = (block[at] & 0x80) != 0;
        if (!H2c.TryReadInteger(block, ref at, 7, out var length) || length > block.Length - at)
        {
            return 0;
        }

        var value = block.Slice(at, length);
        return huffman ? HuffmanDigits(value) : PlainDigits(value);
    }

    private static int PlainDigits(ReadOnlySpan<byte> value)
    {
        if (value.Length != 3)
        {
            return 0;
        }

        var status = 0;
        foreach (var c in value)
        {
            if (c is < (byte)'0' or > (byte)'9')
            {
                return 0;
            }

            status = (status * 10) + (c - '0');
        }

        return status;
    }

    /// <summary>
    /// Three Huffman-coded digits (RFC 7541 Appendix B: '0'-'2' are 00000-00010, '3'-'9' are
    /// 011001-011111) and up to 7 bits of EOS padding (all ones).
    /// </summary>
    private static int HuffmanDigits(ReadOnlySpan<byte> value)
    {
        if (value.Length is < 2 or > 3)
        {
            return 0;
        }

        var bits = 0;
        foreach (var b in value)
        {
            bits = (bits << 8) | b;
        }

        var left = value.Length * 8;
        var status = 0;
        for (var digit = 0; digit < 3; digit++)
        {
            if (left < 5)
            {
                return 0;
            }

            var five = (bits >> (left - 5)) & 0x1F;
            int d;
            if (five <= 2)
            {
                d = five;
                left -= 5;
            }
            else
            {
                if (left < 6)
                {
                    return 0;
                }

                var six = (bits >> (left - 6)) & 0x3F;
                if (six is < 0x19 or > 0x1F)
                {
                    return 0;
                }

                d = six - 0x19 + 3;
                left -= 6;
            }

            status = (status * 10) + d;
        }

        var padding = (1 << left) - 1;
        return left < 8 && (bits & padding) == padding ? status : 0;
    }
}
