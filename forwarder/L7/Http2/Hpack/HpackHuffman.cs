using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Hpack;

/// <summary>
/// The HPACK Huffman code (RFC 7541 Appendix B). The code is canonical (codes of one length are
/// consecutive, ordered by symbol), so only the 257 code lengths are kept and the codes follow
/// from them; decoding compares the next bits against each length's range of codes, shortest first.
/// </summary>
internal static class HpackHuffman
{
    private const int Eos = 256;
    private const int MinLength = 5;
    private const int MaxLength = 30;

    private static readonly byte[] Lengths =
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
        30,
    ];

    private static readonly uint[] Codes = new uint[Lengths.Length];
    private static readonly uint[] FirstCode = new uint[MaxLength + 1];
    private static readonly int[] CountOfLength = new int[MaxLength + 1];
    private static readonly int[] FirstSymbolIndex = new int[MaxLength + 1];
    private static readonly short[] SymbolsByCode = new short[Lengths.Length];

    static HpackHuffman()
    {
        var order = Enumerable.Range(0, Lengths.Length).OrderBy(s => Lengths[s]).ThenBy(s => s).ToArray();
        uint code = 0;
        var previous = Lengths[order[0]];
        for (var i = 0; i < order.Length; i++)
        {
            var symbol = order[i];
            var length = Lengths[symbol];
            if (i > 0)
            {
                code = (code + 1) << (length - previous);
            }

            if (CountOfLength[length]++ == 0)
            {
                FirstCode[length] = code;
                FirstSymbolIndex[length] = i;
            }

            Codes[symbol] = code;
            SymbolsByCode[i] = (short)symbol;
            previous = length;
        }
    }

    /// <summary>The length of <paramref name="source"/> Huffman-encoded, in bytes.</summary>
    public static int EncodedLength(ReadOnlySpan<byte> source)
    {
        long bits = 0;
        foreach (var b in source)
        {
            bits += Lengths[b];
        }

        return (int)((bits + 7) >> 3);
    }

    /// <summary>Encodes into <paramref name="destination"/> (at least <see cref="EncodedLength"/> long), padding with the EOS prefix.</summary>
    public static int Encode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        ulong pending = 0;
        var pendingBits = 0;
        var written = 0;
        foreach (var b in source)
        {
            pending = (pending << Lengths[b]) | Codes[b];
            pendingBits += Lengths[b];
            while (pendingBits >= 8)
            {
                pendingBits -= 8;
                destination[written++] = (byte)(pending >> pendingBits);
            }
        }

        if (pendingBits > 0)
        {
            destination[written++] = (byte)((pending << (8 - pendingBits)) | (0xFFu >> pendingBits));
        }

        return written;
    }

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/>; the decoded length,
    /// or -1 when it does not fit. A COMPRESSION_ERROR for EOS inside the string or padding that
    /// is longer than 7 bits or not the EOS prefix (RFC 7541 5.2).
    /// </summary>
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        ulong bits = 0;
        var bitCount = 0;
        var next = 0;
        var written = 0;
        while (true)
        {
            while (bitCount <= 56 && next < source.Length)
            {
                bits = (bits << 8) | source[next++];
                bitCount += 8;
            }

            var symbol = -1;
            var length = MinLength;
            for (; length <= MaxLength && length <= bitCount; length++)
            {
                var code = (uint)(bits >> (bitCount - length)) & ((1u << length) - 1);
                var offset = code - FirstCode[length];
                if (offset < (uint)CountOfLength[length])
                {
                    symbol = SymbolsByCode[FirstSymbolIndex[length] + (int)offset];
                    break;
                }
            }

            if (symbol < 0)
            {
                // Out of bits short of a whole code: what is left must be padding.
                var padding = bits & ((1ul << bitCount) - 1);
                if (bitCount > 7 || padding != (1ul << bitCount) - 1)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.CompressionError, "HPACK: invalid Huffman padding");
                }

                return written;
            }

            if (symbol == Eos)
            {
                throw new Http2ConnectionException(Http2ErrorCode.CompressionError, "HPACK: EOS in a Huffman-encoded string");
            }

            if (written == destination.Length)
            {
                return -1;
            }

            destination[written++] = (byte)symbol;
            bitCount -= length;
        }
    }
}
