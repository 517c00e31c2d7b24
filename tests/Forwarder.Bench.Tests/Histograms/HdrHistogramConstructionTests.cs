using Forwarder.Bench.Histograms;

namespace Forwarder.Bench.Tests.Histograms;

// Expected layouts come from HdrHistogram's published tests: Java's HistogramTest (index calculations),
// HdrHistogram_py's test_basic, and the footers of Java-generated .hgrm files (ReferenceData).
public sealed class HdrHistogramConstructionTests
{
    [Theory]
    [InlineData(1L, 1L << 32, 3, 2048, 23)]
    [InlineData(1L << 12, 1L << 32, 3, 2048, 11)]
    [InlineData(1L << 51, long.MaxValue, 3, 2048, 2)]
    [InlineData(1L << 54, 1L << 62, 2, 256, 2)]
    [InlineData(1L << 61, 1L << 62, 0, 2, 2)]
    [InlineData(1L, 3_600_000_000L, 3, 2048, 22)]
    [InlineData(1L, 36_000_000_000L, 1, 32, 32)]
    [InlineData(1L, 36_000_000_000L, 2, 256, 29)]
    [InlineData(1L, 36_000_000_000L, 3, 2048, 26)]
    [InlineData(1L, 36_000_000_000L, 4, 32768, 22)]
    [InlineData(1L, 36_000_000_000L, 5, 262144, 19)]
    public void Constructor_RangeAndPrecision_BucketLayoutMatchesReference(
        long lowest, long highest, int digits, int expectedSubBuckets, int expectedBuckets)
    {
        var histogram = new HdrHistogram(lowest, highest, digits);

        Assert.Equal(expectedSubBuckets, histogram.SubBucketCount);
        Assert.Equal(expectedBuckets, histogram.BucketCount);
        Assert.Equal((expectedBuckets + 1) * (expectedSubBuckets / 2), histogram.CountsArrayLength);
    }

    [Fact]
    public void Constructor_OneHourInMicroseconds_CountsLengthMatchesReference()
    {
        // HdrHistogram_py/_c: counts_len 23552 for (1, 3600 * 1000 * 1000, 3).
        Assert.Equal(23552, new HdrHistogram(3_600_000_000L, 3).CountsArrayLength);
    }

    [Fact]
    public void Constructor_Arguments_ExposedAsProperties()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);
        var scaled = new HdrHistogram(1000, 3_600_000_000L, 4);

        Assert.Equal(1, histogram.LowestDiscernibleValue);
        Assert.Equal(3_600_000_000L, histogram.HighestTrackableValue);
        Assert.Equal(3, histogram.NumberOfSignificantValueDigits);
        Assert.Equal(1000, scaled.LowestDiscernibleValue);
        Assert.Equal(4, scaled.NumberOfSignificantValueDigits);
        Assert.Equal(0, histogram.TotalCount);
        Assert.Equal(long.MaxValue, histogram.StartTimeStamp);
        Assert.Equal(0, histogram.EndTimeStamp);
        Assert.Null(histogram.Tag);
    }

    [Theory]
    [InlineData(1L, 1L, 3)] // highest < 2 * lowest (Java: new Histogram(1, 3))
    [InlineData(1L, 3_600_000_000L, 6)]
    [InlineData(1L, 3_600_000_000L, -1)]
    [InlineData(0L, 3_600_000_000L, 3)]
    [InlineData(long.MaxValue / 2 + 1, long.MaxValue, 3)]
    [InlineData(1000L, 1999L, 3)]
    [InlineData(1L << 52, 1L << 62, 3)] // 11 sub-bucket bits above a 52-bit unit do not fit in 62 bits
    public void Constructor_InvalidArguments_ThrowsArgumentException(long lowest, long highest, int digits)
    {
        Assert.ThrowsAny<ArgumentException>(() => new HdrHistogram(lowest, highest, digits));
    }

    [Fact]
    public void GetBucketIndex_UnitMagnitudeZero_MatchesJavaIndexCalculations()
    {
        var h = new HdrHistogram(1L, 1L << 32, 3);

        Assert.Equal(0, h.GetBucketIndex(3));
        Assert.Equal(3, h.GetSubBucketIndex(3, 0));
        Assert.Equal(0, h.GetBucketIndex(1024 + 3));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex(1024 + 3, 0));
        Assert.Equal(1, h.GetBucketIndex(2048 + (3 * 2)));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex(2048 + (3 * 2), 1));
        Assert.Equal(2, h.GetBucketIndex((2048 << 1) + (3 * 4)));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex((2048 << 1) + (3 * 4), 2));
        Assert.Equal(23, h.GetBucketIndex((2048L << 22) + (3 * (1 << 23))));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex((2048L << 22) + (3 * (1 << 23)), 23));
    }

    [Fact]
    public void GetBucketIndex_UnitMagnitude12_MatchesJavaIndexCalculations()
    {
        var h = new HdrHistogram(1L << 12, 1L << 32, 3);
        const long unit = 1L << 12;

        Assert.Equal(0, h.GetBucketIndex(3));
        Assert.Equal(0, h.GetSubBucketIndex(3, 0));
        Assert.Equal(0, h.GetBucketIndex(3 * unit));
        Assert.Equal(3, h.GetSubBucketIndex(3 * unit, 0));
        Assert.Equal(0, h.GetBucketIndex(unit * (1024 + 3)));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex(unit * (1024 + 3), 0));
        Assert.Equal(1, h.GetBucketIndex((unit << 11) + (3 * (unit << 1))));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex((unit << 11) + (3 * (unit << 1)), 1));
        Assert.Equal(11, h.GetBucketIndex((unit << 21) + (3 * (unit << 11))));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex((unit << 21) + (3 * (unit << 11)), 11));
    }

    [Fact]
    public void GetBucketIndex_UnitMagnitude51_CoversLongMaxValue()
    {
        var h = new HdrHistogram(1L << 51, long.MaxValue, 3);
        const long unit = 1L << 51;

        Assert.Equal(0, h.GetBucketIndex(unit * (1024 + 1023)));
        Assert.Equal(1024 + 1023, h.GetSubBucketIndex(unit * (1024 + 1023), 0));
        Assert.Equal(1, h.GetBucketIndex((unit << 11) + (3 * (unit << 1))));
        Assert.Equal(1024 + 3, h.GetSubBucketIndex((unit << 11) + (3 * (unit << 1)), 1));
        Assert.Equal(1, h.GetBucketIndex(long.MaxValue));
        Assert.Equal(1024 + 1023, h.GetSubBucketIndex(long.MaxValue, 1));
    }

    [Theory]
    [InlineData(1L << 54, 1L << 62, 2, 128 + 127)]
    [InlineData(1L << 61, 1L << 62, 0, 1)]
    public void GetSubBucketIndex_LongMaxValueInTinyHistogram_IsLastSubBucket(
        long lowest, long highest, int digits, int expectedSubBucket)
    {
        var h = new HdrHistogram(lowest, highest, digits);

        Assert.Equal(0, h.GetBucketIndex(3));
        Assert.Equal(0, h.GetSubBucketIndex(3, 0));
        Assert.Equal(1, h.GetBucketIndex(long.MaxValue));
        Assert.Equal(expectedSubBucket, h.GetSubBucketIndex(long.MaxValue, 1));
    }

    [Theory]
    [InlineData(1L, 3_600_000_000L, 3)]
    [InlineData(1000L, 3_600_000_000L, 2)]
    [InlineData(1L, long.MaxValue, 3)]
    [InlineData(1L, 1L << 40, 5)]
    public void ValueFromIndex_EveryIndex_IsLowestValueCountedThere(long lowest, long highest, int digits)
    {
        var h = new HdrHistogram(lowest, highest, digits);

        for (int index = 0; index < h.CountsArrayLength; index++)
        {
            long value = h.ValueFromIndex(index);
            Assert.Equal(index, h.CountsArrayIndex(value));
            Assert.Equal(value, h.LowestEquivalentValue(value));
        }
    }
}
