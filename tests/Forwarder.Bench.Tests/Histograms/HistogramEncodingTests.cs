using System.Buffers.Binary;
using System.IO.Compression;
using Forwarder.Bench.Histograms;

namespace Forwarder.Bench.Tests.Histograms;

public sealed class HistogramEncodingTests
{
    // HdrHistogram_py's ENCODE_SAMPLES_HDRHISTOGRAM_C: compressed V2 encodings written by HdrHistogram_c of
    // the classic data set (10,000 x 1,000 us and one 100,000,000 us; highest 3,600,000,000; 3 digits), raw
    // and corrected for a 10,000 us expected interval.
    private const string CRawClassicDataSet = "HISTFAAAACl4nJNpmSzMwMBgyAABzFCaEURcm7yEwf4DROA8/4I5jNM7mJgAlWkH9g==";

    private const string CCorrectedClassicDataSet =
        "HISTFAAAAP94nJNpmSzMwCByigECmKE0I4i4NnkJg/0HiMB5/gVzGD8aM/3lZ7rPyTSbjektC9N7Fqa" +
        "HzEzbmZi2whCEvZKRaSYj02wwiYng4tFM3lDoC2dhhwh5UyZlJlUMjClCmgpMEUUmQSZ+IBZEojFFCM" +
        "vQRwUxenmZ2MGQFUqz4+CTo4I2pg4dFdQylZWJkYkZCaPyMEUIydPLjMHrssFixuB12XD0HRAwMsFJg" +
        "kwilZHJHHKmjzp41MFDOjhYmFiQEUEmMWqGsvKBd8Fwd/Co/waTC9jYOMAIiSJRhLbKh5x9Q87Bo/YN" +
        "bfsoM4CPhw+IIJAkxnDXN+QcTIpyAPnGh6k=";

    // First interval of Java's jHiccup-2.0.7S.logV2.hlog (its Interval_Max column says 2.769 ms).
    private const string JavaJHiccupInterval =
        "HISTFAAAAEV42pNpmSzMwMCgyAABTBDKT4GBgdnNYMcCBvsPEBEJISEuATEZMQ4uASkhIR4nrxg9v2lMaxhvMekILGZkKmcCAEf2CsI=";

    public static TheoryData<long, long, int> Layouts => new()
    {
        { 1, 3_600_000_000L, 0 },
        { 1, 3_600_000_000L, 1 },
        { 1, 3_600_000_000L, 2 },
        { 1, 3_600_000_000L, 3 },
        { 1, 3_600_000_000L, 4 },
        { 1, 3_600_000_000L, 5 },
        { 1000, 3_600_000_000L * 512, 3 },
        { 1, long.MaxValue, 2 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Encode_ThenDecode_RoundTrips(long lowest, long highest, int digits)
    {
        HdrHistogram histogram = Populated(lowest, highest, digits);

        HdrHistogram decoded = HistogramEncoding.Decode(HistogramEncoding.Encode(histogram));

        AssertEquivalent(histogram, decoded);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void EncodeCompressed_ThenDecode_RoundTrips(long lowest, long highest, int digits)
    {
        HdrHistogram histogram = Populated(lowest, highest, digits);

        HdrHistogram decoded = HistogramEncoding.Decode(HistogramEncoding.EncodeCompressed(histogram));

        AssertEquivalent(histogram, decoded);
    }

    [Fact]
    public void Encode_EmptyHistogram_IsHeaderAndOneZeroWord()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);

        byte[] encoded = HistogramEncoding.Encode(histogram);
        HdrHistogram decoded = HistogramEncoding.Decode(encoded);
        HdrHistogram decompressed = HistogramEncoding.Decode(HistogramEncoding.EncodeCompressed(histogram));

        Assert.Equal(41, encoded.Length);
        Assert.Equal(1, BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(4)));
        Assert.Equal(0, encoded[40]);
        Assert.Equal(0, decoded.TotalCount);
        Assert.Equal(0, decoded.GetMaxValue());
        Assert.Equal(0, decompressed.TotalCount);
        Assert.Equal(3_600_000_000L, decompressed.HighestTrackableValue);
    }

    [Fact]
    public void Encode_Header_HasV2LayoutBigEndian()
    {
        var histogram = new HdrHistogram(1000, 3_600_000_000L, 3);
        histogram.RecordValue(5000);

        byte[] encoded = HistogramEncoding.Encode(histogram);

        Assert.Equal(0x1c849313, BinaryPrimitives.ReadInt32BigEndian(encoded));
        Assert.Equal(encoded.Length - 40, BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(4)));
        Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(8)));
        Assert.Equal(3, BinaryPrimitives.ReadInt32BigEndian(encoded.AsSpan(12)));
        Assert.Equal(1000, BinaryPrimitives.ReadInt64BigEndian(encoded.AsSpan(16)));
        Assert.Equal(3_600_000_000L, BinaryPrimitives.ReadInt64BigEndian(encoded.AsSpan(24)));
        Assert.Equal(1.0, BinaryPrimitives.ReadDoubleBigEndian(encoded.AsSpan(32)));
    }

    [Fact]
    public void Encode_Counts_ZigZagVarintsWithNegativeZeroRuns()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);
        histogram.RecordValue(0);
        histogram.RecordValueWithCount(2, 64);
        histogram.RecordValueWithCount(3, 300);
        histogram.RecordValue(7);

        byte[] payload = HistogramEncoding.Encode(histogram)[40..];

        // 1 -> 2; one empty bucket -> 0; 64 -> 128 = 80 01; 300 -> 600 = D8 04; three empty buckets -> -3 -> 5; 1 -> 2.
        Assert.Equal(new byte[] { 0x02, 0x00, 0x80, 0x01, 0xD8, 0x04, 0x05, 0x02 }, payload);
    }

    [Fact]
    public void Encode_LongMaxValueCount_UsesFullNinthByte()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);
        histogram.RecordValueWithCount(0, long.MaxValue);

        byte[] encoded = HistogramEncoding.Encode(histogram);

        // HdrHistogram_py's LARGE_POSITIVE_VALUE: the largest count in LEB128-64b9B ZigZag form.
        Assert.Equal(new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, encoded[40..]);
        Assert.Equal(long.MaxValue, HistogramEncoding.Decode(encoded).GetCountAtValue(0));
    }

    [Fact]
    public void EncodeCompressed_HugeCounts_RoundTrip()
    {
        // Java's testSimpleIntegerHistogramEncoding, step by step past 2^4, 2^16, 2^20, 2^32 and 2^52.
        var histogram = new HdrHistogram(274_877_906_943L, 3);
        histogram.RecordValue(6147);
        histogram.RecordValue(1024);
        histogram.RecordValue(0);
        (long Value, long Count)[] steps = [(100, 1L << 4), (200, 1L << 16), (300, 1L << 20), (400, 1L << 32), (500, 1L << 52)];
        foreach ((long value, long count) in steps)
        {
            histogram.RecordValueWithCount(value, count);

            AssertEquivalent(histogram, HistogramEncoding.Decode(HistogramEncoding.EncodeCompressed(histogram)));
        }
    }

    [Fact]
    public void EncodeCompressed_Output_HasCompressedCookieAndLength()
    {
        HdrHistogram histogram = Populated(1, 3_600_000_000L, 3);

        byte[] compressed = HistogramEncoding.EncodeCompressed(histogram);

        Assert.Equal(0x1c849314, BinaryPrimitives.ReadInt32BigEndian(compressed));
        Assert.Equal(compressed.Length - 8, BinaryPrimitives.ReadInt32BigEndian(compressed.AsSpan(4)));
        Assert.StartsWith("HISTFAAA", Convert.ToBase64String(compressed), StringComparison.Ordinal);
        Assert.Equal(HistogramEncoding.Encode(histogram), Inflate(compressed));
    }

    [Fact]
    public void Decode_HdrHistogramCRawClassicDataSet_MatchesPublishedPercentiles()
    {
        HdrHistogram histogram = HistogramEncoding.Decode(Convert.FromBase64String(CRawClassicDataSet));

        Assert.Equal(10_001, histogram.TotalCount);
        Assert.Equal(3_600_000_000L, histogram.HighestTrackableValue);
        Assert.Equal(3, histogram.NumberOfSignificantValueDigits);
        Assert.True(histogram.ValuesAreEquivalent(1000, histogram.GetMinValue()));
        Assert.True(histogram.ValuesAreEquivalent(100_000_000, histogram.GetMaxValue()));
        AssertPercentile(histogram, 30.0, 1000.0);
        AssertPercentile(histogram, 99.0, 1000.0);
        AssertPercentile(histogram, 99.99, 1000.0);
        AssertPercentile(histogram, 99.999, 100_000_000.0);
        AssertPercentile(histogram, 100.0, 100_000_000.0);
    }

    [Fact]
    public void Decode_HdrHistogramCCorrectedClassicDataSet_MatchesPublishedPercentiles()
    {
        HdrHistogram histogram = HistogramEncoding.Decode(Convert.FromBase64String(CCorrectedClassicDataSet));

        Assert.Equal(20_000, histogram.TotalCount);
        Assert.True(histogram.ValuesAreEquivalent(1000, histogram.GetMinValue()));
        Assert.True(histogram.ValuesAreEquivalent(100_000_000, histogram.GetMaxValue()));
        AssertPercentile(histogram, 30.0, 1000.0);
        AssertPercentile(histogram, 50.0, 1000.0);
        AssertPercentile(histogram, 75.0, 50_000_000.0);
        AssertPercentile(histogram, 90.0, 80_000_000.0);
        AssertPercentile(histogram, 99.0, 98_000_000.0);
        AssertPercentile(histogram, 99.999, 100_000_000.0);
        AssertPercentile(histogram, 100.0, 100_000_000.0);
    }

    [Fact]
    public void Decode_HdrHistogramCEncodings_EqualLocallyRecordedHistograms()
    {
        var raw = new HdrHistogram(3_600_000_000L, 3);
        var corrected = new HdrHistogram(3_600_000_000L, 3);
        raw.RecordValueWithCount(1000, 10_000);
        raw.RecordValue(100_000_000);
        for (int i = 0; i < 10_000; i++)
        {
            corrected.RecordValueWithExpectedInterval(1000, 10_000);
        }

        corrected.RecordValueWithExpectedInterval(100_000_000, 10_000);

        HdrHistogramTests.AssertSameCounts(raw, HistogramEncoding.Decode(Convert.FromBase64String(CRawClassicDataSet)));
        HdrHistogramTests.AssertSameCounts(corrected, HistogramEncoding.Decode(Convert.FromBase64String(CCorrectedClassicDataSet)));
    }

    [Fact]
    public void Encode_DecodedJavaHistogram_ReproducesJavasUncompressedBytes()
    {
        byte[] compressed = Convert.FromBase64String(JavaJHiccupInterval);
        byte[] javaEncoding = Inflate(compressed);

        HdrHistogram histogram = HistogramEncoding.Decode(compressed);

        Assert.Equal("2.769", JavaNumberFormat.Fixed(histogram.GetMaxValue() / 1_000_000.0, 3));
        Assert.Equal(javaEncoding, HistogramEncoding.Encode(histogram));
    }

    [Fact]
    public void Decode_WrongCookie_ThrowsFormatException()
    {
        byte[] encoded = HistogramEncoding.Encode(Populated(1, 3_600_000_000L, 3));
        BinaryPrimitives.WriteInt32BigEndian(encoded, 0x0c72124e); // a DoubleHistogram cookie

        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(encoded));
        Assert.Throws<FormatException>(() => HistogramEncoding.Decode([0x1c, 0x84]));
    }

    [Fact]
    public void Decode_TruncatedPayload_ThrowsFormatException()
    {
        byte[] encoded = HistogramEncoding.Encode(Populated(1, 3_600_000_000L, 3));
        byte[] compressed = HistogramEncoding.EncodeCompressed(Populated(1, 3_600_000_000L, 3));

        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(encoded.AsSpan(0, encoded.Length - 1)));
        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(encoded.AsSpan(0, 30)));
        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(compressed.AsSpan(0, compressed.Length - 4)));
    }

    [Fact]
    public void Decode_CountsBeyondDeclaredRange_ThrowsFormatException()
    {
        byte[] encoded = HistogramEncoding.Encode(Populated(1, 3_600_000_000L, 3));
        BinaryPrimitives.WriteInt64BigEndian(encoded.AsSpan(24), 2000); // shrink the declared range

        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(encoded));
    }

    [Fact]
    public void Decode_InvalidHeaderPrecision_ThrowsFormatException()
    {
        byte[] encoded = HistogramEncoding.Encode(Populated(1, 3_600_000_000L, 3));
        BinaryPrimitives.WriteInt32BigEndian(encoded.AsSpan(12), 7);

        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(encoded));
    }

    [Fact]
    public void Decode_OverlongZeroRun_ThrowsFormatException()
    {
        byte[] encoded = HistogramEncoding.Encode(new HdrHistogram(3_600_000_000L, 3));
        // HdrHistogram_py's LARGE_NEGATIVE_VALUE: a run of 2^63 empty buckets.
        byte[] hostile = [.. encoded[..40], 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        BinaryPrimitives.WriteInt32BigEndian(hostile.AsSpan(4), 9);

        Assert.Throws<FormatException>(() => HistogramEncoding.Decode(hostile));
    }

    private static HdrHistogram Populated(long lowest, long highest, int digits)
    {
        var histogram = new HdrHistogram(lowest, highest, digits);
        histogram.RecordValue(0);
        for (long value = lowest; value <= highest / 4; value = (value * 3) + 7)
        {
            histogram.RecordValueWithCount(value, (value % 5) + 1);
        }

        histogram.RecordValue(highest);
        return histogram;
    }

    private static void AssertEquivalent(HdrHistogram expected, HdrHistogram actual)
    {
        Assert.Equal(expected.LowestDiscernibleValue, actual.LowestDiscernibleValue);
        Assert.Equal(expected.HighestTrackableValue, actual.HighestTrackableValue);
        Assert.Equal(expected.NumberOfSignificantValueDigits, actual.NumberOfSignificantValueDigits);
        Assert.Equal(expected.GetMaxValue(), actual.GetMaxValue());
        Assert.Equal(expected.GetMinValue(), actual.GetMinValue());
        Assert.Equal(expected.GetMinNonZeroValue(), actual.GetMinNonZeroValue());
        HdrHistogramTests.AssertSameCounts(expected, actual);
    }

    private static void AssertPercentile(HdrHistogram histogram, double percentile, double expected) =>
        Assert.InRange(histogram.GetValueAtPercentile(percentile), expected * 0.999, expected * 1.001);

    private static byte[] Inflate(byte[] compressed)
    {
        using var zlib = new ZLibStream(new MemoryStream(compressed, 8, compressed.Length - 8), CompressionMode.Decompress);
        using var output = new MemoryStream();
        zlib.CopyTo(output);
        return output.ToArray();
    }
}
