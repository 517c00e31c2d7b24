using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace Forwarder.Bench.Histograms;

/// <summary>
/// HdrHistogram's binary histogram encoding, interchangeable with the Java, C, .NET and Python implementations.
/// </summary>
/// <remarks>
/// V2 (written here): a 40-byte big-endian header (cookie, payload length, normalizing index offset,
/// significant digits, lowest discernible value, highest trackable value, integer-to-double ratio) followed by
/// the counts up to the maximum value's bucket as ZigZag LEB128 varints, where a negative number -n stands for
/// n empty buckets. The compressed form is a cookie, a length and the zlib-deflated V2 encoding. Reading also
/// accepts the older V1 and V0 forms (fixed-width big-endian counts) found in early jHiccup logs.
/// </remarks>
internal static class HistogramEncoding
{
    private const int V0EncodingCookieBase = 0x1c849308;
    private const int V0CompressedEncodingCookieBase = 0x1c849309;
    private const int V1EncodingCookieBase = 0x1c849301;
    private const int V1CompressedEncodingCookieBase = 0x1c849302;
    private const int V2EncodingCookieBase = 0x1c849303;
    private const int V2CompressedEncodingCookieBase = 0x1c849304;

    // Bits 4..7 of a cookie carry the word size; V2 sets 0x10 to mark its varint (TLZE) counts.
    private const int WordSizeCookieBits = 0xf0;
    private const int V2WordSizeFlag = 0x10;
    private const int V2MaxWordSize = 9;

    private const int HeaderSize = 40;
    private const int V0HeaderSize = 32;

    /// <summary>Uncompressed V2 encoding (cookie 0x1c849313).</summary>
    public static byte[] Encode(HdrHistogram histogram)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        var payload = new ArrayBufferWriter<byte>();
        WriteCounts(histogram, payload);

        byte[] encoded = new byte[HeaderSize + payload.WrittenCount];
        Span<byte> header = encoded;
        BinaryPrimitives.WriteInt32BigEndian(header, V2EncodingCookieBase | V2WordSizeFlag);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], payload.WrittenCount);
        BinaryPrimitives.WriteInt32BigEndian(header[8..], 0); // normalizing index offset: never shifted here
        BinaryPrimitives.WriteInt32BigEndian(header[12..], histogram.NumberOfSignificantValueDigits);
        BinaryPrimitives.WriteInt64BigEndian(header[16..], histogram.LowestDiscernibleValue);
        BinaryPrimitives.WriteInt64BigEndian(header[24..], histogram.HighestTrackableValue);
        BinaryPrimitives.WriteDoubleBigEndian(header[32..], 1.0); // integer-to-double ratio of integer histograms
        payload.WrittenSpan.CopyTo(encoded.AsSpan(HeaderSize));
        return encoded;
    }

    /// <summary>
    /// Compressed V2 encoding (cookie 0x1c849314), the form logs carry in base64. Compressed as tightly as
    /// Java's log writer does (Deflater.BEST_COMPRESSION): histograms are small and encoded off the hot path.
    /// </summary>
    public static byte[] EncodeCompressed(HdrHistogram histogram)
    {
        byte[] encoded = Encode(histogram);
        using var output = new MemoryStream();
        output.Write(stackalloc byte[8]); // cookie and compressed length, filled in below
        using (var zlib = new ZLibStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            zlib.Write(encoded);
        }

        byte[] compressed = output.ToArray();
        BinaryPrimitives.WriteInt32BigEndian(compressed, V2CompressedEncodingCookieBase | V2WordSizeFlag);
        BinaryPrimitives.WriteInt32BigEndian(compressed.AsSpan(4), compressed.Length - 8);
        return compressed;
    }

    /// <summary>Decodes any V2, V1 or V0 encoding, compressed or not.</summary>
    /// <exception cref="FormatException">The data is not a valid integer-histogram encoding.</exception>
    public static HdrHistogram Decode(ReadOnlySpan<byte> data)
    {
        int cookieBase = ReadCookie(data) & ~WordSizeCookieBits;
        if (cookieBase is V2CompressedEncodingCookieBase or V1CompressedEncodingCookieBase or V0CompressedEncodingCookieBase)
        {
            int length = ReadInt32(data, 4);
            if (length < 0 || length > data.Length - 8)
            {
                throw new FormatException("The compressed histogram is shorter than its header says.");
            }

            return DecodeUncompressed(Inflate(data.Slice(8, length)), inflated: true);
        }

        return DecodeUncompressed(data, inflated: false);
    }

    private static HdrHistogram DecodeUncompressed(ReadOnlySpan<byte> data, bool inflated)
    {
        int cookie = ReadCookie(data);
        int cookieBase = cookie & ~WordSizeCookieBits;
        int significantDigits;
        long lowest;
        long highest;
        ReadOnlySpan<byte> payload;
        if (cookieBase is V2EncodingCookieBase or V1EncodingCookieBase)
        {
            // The normalizing index offset (bytes 8..11) and the integer-to-double ratio (32..39) only describe
            // how a DoubleHistogram stores the counts; the payload lists them in plain index order either way.
            int payloadLength = ReadInt32(data, 4);
            significantDigits = ReadInt32(data, 12);
            lowest = ReadInt64(data, 16);
            highest = ReadInt64(data, 24);
            if (inflated && data.Length >= HeaderSize)
            {
                // HdrHistogram_c before its issue #22 fix counted the header in the payload length. Like the C and
                // Python readers, accept a short inflated payload: the compressed length was checked, so the
                // shortfall comes from the writer rather than from cut-off data.
                payloadLength = Math.Min(payloadLength, data.Length - HeaderSize);
            }

            if (payloadLength < 0 || payloadLength > data.Length - HeaderSize)
            {
                throw new FormatException("The histogram payload is shorter than its header says.");
            }

            payload = data.Slice(HeaderSize, payloadLength);
        }
        else if (cookieBase == V0EncodingCookieBase)
        {
            if (data.Length < V0HeaderSize)
            {
                throw new FormatException("The histogram header is truncated.");
            }

            significantDigits = ReadInt32(data, 4);
            lowest = ReadInt64(data, 8);
            highest = ReadInt64(data, 16);
            payload = data[V0HeaderSize..]; // bytes 24..31 held a total count, recomputed from the counts
        }
        else
        {
            throw new FormatException($"Not an integer histogram encoding (cookie 0x{cookie:x8}).");
        }

        int wordSize = cookieBase == V2EncodingCookieBase ? V2MaxWordSize : ((cookie & WordSizeCookieBits) >> 4) & 0xe;
        HdrHistogram histogram;
        try
        {
            histogram = new HdrHistogram(lowest, highest, significantDigits);
        }
        catch (ArgumentException ex)
        {
            throw new FormatException("The histogram header has an invalid range or precision.", ex);
        }

        ReadCounts(payload, wordSize, histogram);
        return histogram;
    }

    private static void WriteCounts(HdrHistogram histogram, IBufferWriter<byte> output)
    {
        // Counts past the maximum value's bucket are all zero and left out.
        int end = histogram.CountsArrayIndex(histogram.GetMaxValue()) + 1;
        int index = 0;
        while (index < end)
        {
            long count = histogram.GetCountAtIndex(index++);
            if (count != 0)
            {
                WriteZigZag(output, count);
                continue;
            }

            long zeros = 1;
            while (index < end && histogram.GetCountAtIndex(index) == 0)
            {
                zeros++;
                index++;
            }

            // A lone empty bucket is a plain 0; runs are negated lengths.
            WriteZigZag(output, zeros > 1 ? -zeros : 0);
        }
    }

    private static void ReadCounts(ReadOnlySpan<byte> payload, int wordSize, HdrHistogram histogram)
    {
        if (wordSize is not (2 or 4 or 8 or V2MaxWordSize))
        {
            throw new FormatException($"Unsupported histogram word size {wordSize}.");
        }

        long index = 0;
        int position = 0;
        // V0 payloads may end in a partial word of zero padding; only whole words count.
        while (wordSize == V2MaxWordSize ? position < payload.Length : position + wordSize <= payload.Length)
        {
            long count;
            switch (wordSize)
            {
                case V2MaxWordSize:
                    count = ReadZigZag(payload, ref position);
                    if (count < 0)
                    {
                        if (count < -int.MaxValue)
                        {
                            throw new FormatException("An encoded run of empty buckets is too long.");
                        }

                        index -= count;
                        continue;
                    }

                    break;
                case 2:
                    count = BinaryPrimitives.ReadInt16BigEndian(payload[position..]);
                    position += 2;
                    break;
                case 4:
                    count = BinaryPrimitives.ReadInt32BigEndian(payload[position..]);
                    position += 4;
                    break;
                default:
                    count = BinaryPrimitives.ReadInt64BigEndian(payload[position..]);
                    position += 8;
                    break;
            }

            if (count < 0)
            {
                throw new FormatException("The histogram encoding holds a negative count.");
            }

            if (count != 0)
            {
                if (index >= histogram.CountsArrayLength)
                {
                    throw new FormatException("The histogram encoding holds counts beyond its declared range.");
                }

                histogram.RecordValueWithCount(histogram.ValueFromIndex((int)index), count);
            }

            index++;
        }
    }

    private static void WriteZigZag(IBufferWriter<byte> output, long value)
    {
        ulong zigZag = (ulong)((value << 1) ^ (value >> 63));
        Span<byte> span = output.GetSpan(V2MaxWordSize);
        int length = 0;
        // LEB128 limited to 9 bytes: the ninth byte carries the top 8 bits whole, without a continuation bit.
        while (length < V2MaxWordSize - 1 && zigZag >= 0x80)
        {
            span[length++] = (byte)(zigZag | 0x80);
            zigZag >>= 7;
        }

        span[length++] = (byte)zigZag;
        output.Advance(length);
    }

    private static long ReadZigZag(ReadOnlySpan<byte> source, ref int position)
    {
        ulong zigZag = 0;
        for (int shift = 0; ; shift += 7)
        {
            if (position >= source.Length)
            {
                throw new FormatException("The histogram payload ends inside a count.");
            }

            byte next = source[position++];
            if (shift == 56)
            {
                zigZag |= (ulong)next << 56;
                break;
            }

            zigZag |= (ulong)(next & 0x7f) << shift;
            if ((next & 0x80) == 0)
            {
                break;
            }
        }

        return (long)(zigZag >> 1) ^ -(long)(zigZag & 1);
    }

    private static byte[] Inflate(ReadOnlySpan<byte> compressed)
    {
        try
        {
            using var zlib = new ZLibStream(new MemoryStream(compressed.ToArray()), CompressionMode.Decompress);
            using var output = new MemoryStream();
            zlib.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException ex)
        {
            throw new FormatException("The compressed histogram is not valid zlib data.", ex);
        }
    }

    private static int ReadCookie(ReadOnlySpan<byte> data) =>
        data.Length >= 4 ? BinaryPrimitives.ReadInt32BigEndian(data) : throw new FormatException("Too short for a histogram.");

    private static int ReadInt32(ReadOnlySpan<byte> data, int offset) =>
        data.Length >= offset + 4
            ? BinaryPrimitives.ReadInt32BigEndian(data[offset..])
            : throw new FormatException("The histogram header is truncated.");

    private static long ReadInt64(ReadOnlySpan<byte> data, int offset) =>
        data.Length >= offset + 8
            ? BinaryPrimitives.ReadInt64BigEndian(data[offset..])
            : throw new FormatException("The histogram header is truncated.");
}
