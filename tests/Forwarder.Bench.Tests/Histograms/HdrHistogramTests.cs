using Forwarder.Bench.Histograms;

namespace Forwarder.Bench.Tests.Histograms;

// Expected values come from Java's HistogramTest / HistogramDataAccessTest and HdrHistogram_py's tests.
public sealed class HdrHistogramTests
{
    private const long HighestTrackableValue = 3600L * 1000 * 1000; // one hour in microseconds
    private const long TestValueLevel = 4;

    [Fact]
    public void RecordValue_SingleValue_CountedAtThatValue()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        histogram.RecordValue(TestValueLevel);

        Assert.Equal(1, histogram.GetCountAtValue(TestValueLevel));
        Assert.Equal(1, histogram.TotalCount);
        Assert.Equal(TestValueLevel, histogram.GetMinValue());
        Assert.Equal(TestValueLevel, histogram.GetMaxValue());
    }

    [Fact]
    public void RecordValue_WarmHistogram_AllocatesNothing()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        histogram.RecordValue(1);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (long value = 0; value < 100_000; value++)
        {
            histogram.RecordValue(value * 997);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        Assert.Equal(100_001, histogram.TotalCount);
    }

    [Fact]
    public void RecordValue_TopOfLastBucket_AcceptedAsInJava()
    {
        // 3,600,000,000 needs buckets up to 2^32, so Java (and this) accept everything below 2^32.
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        histogram.RecordValue((1L << 32) - 1);

        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.RecordValue(1L << 32));
        Assert.Equal((1L << 32) - 1, histogram.GetMaxValue());
    }

    [Fact]
    public void RecordValue_HighestTrackableValue_Accepted()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        histogram.RecordValue(HighestTrackableValue);

        Assert.Equal(1, histogram.GetCountAtValue(HighestTrackableValue));
        Assert.True(histogram.ValuesAreEquivalent(HighestTrackableValue, histogram.GetMaxValue()));
    }

    [Fact]
    public void RecordValue_FarBeyondHighestTrackableValue_ThrowsArgumentOutOfRange()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.RecordValue(HighestTrackableValue * 3));
        Assert.Equal(0, histogram.TotalCount);
    }

    [Theory]
    [InlineData(1L, HighestTrackableValue, 3)]
    [InlineData(1L, long.MaxValue, 3)]
    [InlineData(1L << 51, long.MaxValue, 3)]
    [InlineData(1L << 61, 1L << 62, 0)]
    [InlineData(1L, 1L << 40, 5)]
    public void RecordValue_NegativeValue_ThrowsArgumentOutOfRange(long lowest, long highest, int digits)
    {
        var histogram = new HdrHistogram(lowest, highest, digits);

        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.RecordValue(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.RecordValue(long.MinValue));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.RecordValueWithCount(-1000, 2));
        Assert.Equal(0, histogram.TotalCount);
    }

    [Fact]
    public void RecordValue_FullRangeHistogram_AcceptsLongMaxValue()
    {
        var histogram = new HdrHistogram(1, long.MaxValue, 3);

        histogram.RecordValue(long.MaxValue);

        Assert.Equal(long.MaxValue, histogram.GetMaxValue());
        Assert.Equal(long.MaxValue, histogram.GetValueAtPercentile(100));
    }

    [Fact]
    public void RecordValueWithCount_NegativeCount_ThrowsArgumentOutOfRange()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.RecordValueWithCount(10, -1));
    }

    [Fact]
    public void RecordValueWithCount_Count_AddedToBucketAndTotal()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        histogram.RecordValueWithCount(1000, 10_000);
        histogram.RecordValueWithCount(1000, 5);

        Assert.Equal(10_005, histogram.GetCountAtValue(1000));
        Assert.Equal(10_005, histogram.TotalCount);
    }

    [Fact]
    public void RecordValueWithExpectedInterval_ValueAboveInterval_RecordsMissingSamples()
    {
        var corrected = new HdrHistogram(HighestTrackableValue, 3);
        var raw = new HdrHistogram(HighestTrackableValue, 3);

        corrected.RecordValueWithExpectedInterval(TestValueLevel, TestValueLevel / 4);
        raw.RecordValue(TestValueLevel);

        for (long value = 1; value <= 4; value++)
        {
            Assert.Equal(1, corrected.GetCountAtValue(value));
            Assert.Equal(value == 4 ? 1 : 0, raw.GetCountAtValue(value));
        }

        Assert.Equal(4, corrected.TotalCount);
        Assert.Equal(1, raw.TotalCount);
    }

    [Fact]
    public void RecordValueWithExpectedInterval_NonPositiveInterval_RecordsOnlyTheValue()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        histogram.RecordValueWithExpectedInterval(1000, 0);
        histogram.RecordValueWithExpectedInterval(1000, -5);

        Assert.Equal(2, histogram.TotalCount);
        Assert.Equal(2, histogram.GetCountAtValue(1000));
    }

    [Fact]
    public void EmptyHistogram_Statistics_AreZero()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Equal(0, histogram.GetMinValue());
        Assert.Equal(0, histogram.GetMaxValue());
        Assert.Equal(long.MaxValue, histogram.GetMinNonZeroValue());
        Assert.Equal(0.0, histogram.GetMean());
        Assert.Equal(0.0, histogram.GetStdDeviation());
        Assert.Equal(0, histogram.GetValueAtPercentile(99.99));
        Assert.Empty(histogram.RecordedValues());
    }

    [Fact]
    public void GetMinValue_ZeroRecorded_IsZeroWhileMinNonZeroValueIsKept()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        histogram.RecordValue(0);
        histogram.RecordValue(5000);

        Assert.Equal(0, histogram.GetMinValue());
        Assert.Equal(5000, histogram.GetMinNonZeroValue());
    }

    [Fact]
    public void GetMinNonZeroValue_ValuesBelowUnit_AreZeroEquivalent()
    {
        var histogram = new HdrHistogram(1024, HighestTrackableValue, 3);

        histogram.RecordValue(1023);
        histogram.RecordValue(5000);

        Assert.Equal(0, histogram.GetMinValue());
        Assert.Equal(histogram.LowestEquivalentValue(5000), histogram.GetMinNonZeroValue());
        Assert.Equal(histogram.HighestEquivalentValue(5000), histogram.GetMaxValue());
    }

    [Fact]
    public void GetMeanAndStdDeviation_FourValues_MatchPythonReference()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        foreach (long value in new long[] { 1000, 1000, 3000, 3000 })
        {
            histogram.RecordValue(value);
        }

        // 3000 sits in a 2-wide bucket whose median is 3001.
        Assert.Equal(2000.5, histogram.GetMean());
        Assert.Equal(1000.5, histogram.GetStdDeviation());
    }

    [Fact]
    public void GetValueAtPercentile_TinyDataSet_MatchesJavaExamples()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);
        histogram.RecordValue(1);
        histogram.RecordValue(2);

        Assert.Equal(1, histogram.GetValueAtPercentile(50.0));
        Assert.Equal(1, histogram.GetValueAtPercentile(50.00000000000001));
        Assert.Equal(2, histogram.GetValueAtPercentile(50.0000000000001));

        histogram.RecordValue(2);
        histogram.RecordValue(2);
        histogram.RecordValue(2);

        Assert.Equal(2, histogram.GetValueAtPercentile(25));
        Assert.Equal(2, histogram.GetValueAtPercentile(30));
    }

    [Fact]
    public void GetValueAtPercentile_ZeroPercentile_ReportsLowestEquivalentValue()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        histogram.RecordValue(10_007);

        Assert.Equal(10_000, histogram.GetValueAtPercentile(0));
        Assert.Equal(10_007, histogram.GetValueAtPercentile(1));
    }

    [Fact]
    public void GetValueAtPercentile_LargeValuesFiveDigits_MatchJavaLargeNumbersTest()
    {
        var histogram = new HdrHistogram(20_000_000, 100_000_000, 5);
        histogram.RecordValue(100_000_000);
        histogram.RecordValue(20_000_000);
        histogram.RecordValue(30_000_000);

        Assert.True(histogram.ValuesAreEquivalent(20_000_000, histogram.GetValueAtPercentile(50.0)));
        Assert.True(histogram.ValuesAreEquivalent(30_000_000, histogram.GetValueAtPercentile(50.0)));
        Assert.True(histogram.ValuesAreEquivalent(100_000_000, histogram.GetValueAtPercentile(83.33)));
        Assert.True(histogram.ValuesAreEquivalent(100_000_000, histogram.GetValueAtPercentile(83.34)));
        Assert.True(histogram.ValuesAreEquivalent(100_000_000, histogram.GetValueAtPercentile(99.0)));
    }

    [Fact]
    public void GetValueAtPercentile_LargestValueFiveDigits_IsPositive()
    {
        var histogram = new HdrHistogram(1_000_000_000_000L, 5);
        histogram.RecordValue(1_000_000_000_000L);

        Assert.True(histogram.GetValueAtPercentile(100.0) > 0);
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(5L)]
    [InlineData(50L)]
    [InlineData(500L)]
    [InlineData(5000L)]
    [InlineData(100_000L)]
    public void GetValueAtPercentile_LinearValues_MatchesValueAtThatPercentile(long length)
    {
        // Java's testValueAtPercentileMatchesPercentile.
        var histogram = new HdrHistogram(1, long.MaxValue, 2);
        for (long value = 1; value <= length; value++)
        {
            histogram.RecordValue(value);
        }

        for (long value = 1; value <= length; value = histogram.NextNonEquivalentValue(value))
        {
            double percentile = 100.0 * value / length;
            Assert.True(
                histogram.ValuesAreEquivalent(value, histogram.GetValueAtPercentile(percentile)),
                $"length {length}, value {value}, percentile {percentile}");
        }
    }

    [Fact]
    public void GetCountAtValue_BeyondRange_ReadsLastBucket()
    {
        var histogram = new HdrHistogram(1000, 3);
        long last = histogram.ValueFromIndex(histogram.CountsArrayLength - 1);
        histogram.RecordValue(last);

        Assert.Equal(1, histogram.GetCountAtValue(long.MaxValue));
    }

    [Fact]
    public void SizeOfEquivalentValueRange_UnitHistogram_MatchesJava()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Equal(1, histogram.SizeOfEquivalentValueRange(1));
        Assert.Equal(1, histogram.SizeOfEquivalentValueRange(1025));
        Assert.Equal(1, histogram.SizeOfEquivalentValueRange(2047));
        Assert.Equal(2, histogram.SizeOfEquivalentValueRange(2048));
        Assert.Equal(2, histogram.SizeOfEquivalentValueRange(2500));
        Assert.Equal(4, histogram.SizeOfEquivalentValueRange(8191));
        Assert.Equal(8, histogram.SizeOfEquivalentValueRange(8192));
        Assert.Equal(8, histogram.SizeOfEquivalentValueRange(10000));
    }

    [Fact]
    public void SizeOfEquivalentValueRange_Scaled1024_MatchesJava()
    {
        var histogram = new HdrHistogram(1024, HighestTrackableValue, 3);

        Assert.Equal(1 * 1024, histogram.SizeOfEquivalentValueRange(1 * 1024));
        Assert.Equal(2 * 1024, histogram.SizeOfEquivalentValueRange(2500 * 1024));
        Assert.Equal(4 * 1024, histogram.SizeOfEquivalentValueRange(8191 * 1024));
        Assert.Equal(8 * 1024, histogram.SizeOfEquivalentValueRange(8192 * 1024));
        Assert.Equal(8 * 1024, histogram.SizeOfEquivalentValueRange(10000 * 1024));
    }

    [Fact]
    public void LowestEquivalentValue_UnitAndScaled_MatchJava()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        var scaled = new HdrHistogram(1024, HighestTrackableValue, 3);

        Assert.Equal(10000, histogram.LowestEquivalentValue(10007));
        Assert.Equal(10008, histogram.LowestEquivalentValue(10009));
        Assert.Equal(10000 * 1024, scaled.LowestEquivalentValue(10007 * 1024));
        Assert.Equal(10008 * 1024, scaled.LowestEquivalentValue(10009 * 1024));
    }

    [Fact]
    public void HighestEquivalentValue_UnitHistogram_MatchesJava()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Equal(8183, histogram.HighestEquivalentValue(8180));
        Assert.Equal(8191, histogram.HighestEquivalentValue(8191));
        Assert.Equal(8199, histogram.HighestEquivalentValue(8193));
        Assert.Equal(9999, histogram.HighestEquivalentValue(9995));
        Assert.Equal(10007, histogram.HighestEquivalentValue(10007));
        Assert.Equal(10015, histogram.HighestEquivalentValue(10008));
    }

    [Fact]
    public void HighestEquivalentValue_Scaled1024_MatchesJava()
    {
        var histogram = new HdrHistogram(1024, HighestTrackableValue, 3);

        Assert.Equal((8183 * 1024) + 1023, histogram.HighestEquivalentValue(8180 * 1024));
        Assert.Equal((8191 * 1024) + 1023, histogram.HighestEquivalentValue(8191 * 1024));
        Assert.Equal((8199 * 1024) + 1023, histogram.HighestEquivalentValue(8193 * 1024));
        Assert.Equal((9999 * 1024) + 1023, histogram.HighestEquivalentValue(9995 * 1024));
        Assert.Equal((10007 * 1024) + 1023, histogram.HighestEquivalentValue(10007 * 1024));
        Assert.Equal((10015 * 1024) + 1023, histogram.HighestEquivalentValue(10008 * 1024));
    }

    [Fact]
    public void MedianEquivalentValue_UnitAndScaled_MatchJava()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        var scaled = new HdrHistogram(1024, HighestTrackableValue, 3);

        Assert.Equal(4, histogram.MedianEquivalentValue(4));
        Assert.Equal(5, histogram.MedianEquivalentValue(5));
        Assert.Equal(4001, histogram.MedianEquivalentValue(4000));
        Assert.Equal(8002, histogram.MedianEquivalentValue(8000));
        Assert.Equal(10004, histogram.MedianEquivalentValue(10007));
        Assert.Equal((4 * 1024) + 512, scaled.MedianEquivalentValue(4 * 1024));
        Assert.Equal((5 * 1024) + 512, scaled.MedianEquivalentValue(5 * 1024));
        Assert.Equal(4001 * 1024, scaled.MedianEquivalentValue(4000 * 1024));
        Assert.Equal(8002 * 1024, scaled.MedianEquivalentValue(8000 * 1024));
        Assert.Equal(10004 * 1024, scaled.MedianEquivalentValue(10007 * 1024));
    }

    [Fact]
    public void NextNonEquivalentValue_BucketEdges_StepToNextBucket()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Equal(2, histogram.NextNonEquivalentValue(1));
        Assert.Equal(2048, histogram.NextNonEquivalentValue(2047));
        Assert.Equal(2050, histogram.NextNonEquivalentValue(2048));
        Assert.Equal(10008, histogram.NextNonEquivalentValue(10007));
        Assert.True(histogram.ValuesAreEquivalent(10000, 10007));
        Assert.False(histogram.ValuesAreEquivalent(10007, 10008));
    }

    [Fact]
    public void EquivalenceFunctions_NegativeValue_ThrowArgumentOutOfRange()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);

        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.LowestEquivalentValue(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.SizeOfEquivalentValueRange(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.GetCountAtValue(-1));
    }

    [Fact]
    public void Reset_RecordedHistogram_ClearsCountsExtremesAndMetadata()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3)
        {
            StartTimeStamp = 1000,
            EndTimeStamp = 2000,
            Tag = "A",
        };
        histogram.RecordValue(TestValueLevel);
        histogram.RecordValue(10);
        histogram.RecordValue(100);
        Assert.Equal(TestValueLevel, histogram.GetMinValue());
        Assert.Equal(100, histogram.GetMaxValue());

        histogram.Reset();

        Assert.Equal(0, histogram.GetCountAtValue(TestValueLevel));
        Assert.Equal(0, histogram.TotalCount);
        Assert.Equal(0, histogram.GetMaxValue());
        Assert.Equal(long.MaxValue, histogram.StartTimeStamp);
        Assert.Equal(0, histogram.EndTimeStamp);
        Assert.Null(histogram.Tag);
        histogram.RecordValue(20);
        histogram.RecordValue(80);
        Assert.Equal(20, histogram.GetMinValue());
        Assert.Equal(80, histogram.GetMaxValue());
    }

    [Fact]
    public void Add_SameLayoutAndBiggerRange_MatchesJavaAddTest()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        var other = new HdrHistogram(HighestTrackableValue, 3);
        histogram.RecordValue(TestValueLevel);
        histogram.RecordValue(TestValueLevel * 1000);
        other.RecordValue(TestValueLevel);
        other.RecordValue(TestValueLevel * 1000);

        histogram.Add(other);

        Assert.Equal(2, histogram.GetCountAtValue(TestValueLevel));
        Assert.Equal(2, histogram.GetCountAtValue(TestValueLevel * 1000));
        Assert.Equal(4, histogram.TotalCount);

        var biggerOther = new HdrHistogram(HighestTrackableValue * 2, 3);
        biggerOther.RecordValue(TestValueLevel);
        biggerOther.RecordValue(TestValueLevel * 1000);
        biggerOther.RecordValue(HighestTrackableValue * 2);

        biggerOther.Add(histogram);

        Assert.Equal(3, biggerOther.GetCountAtValue(TestValueLevel));
        Assert.Equal(3, biggerOther.GetCountAtValue(TestValueLevel * 1000));
        Assert.Equal(1, biggerOther.GetCountAtValue(HighestTrackableValue * 2));
        Assert.Equal(7, biggerOther.TotalCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.Add(biggerOther));
        Assert.Equal(4, histogram.TotalCount);
    }

    [Fact]
    public void Add_DifferentPrecisionAndUnit_CountsLandInEquivalentBuckets()
    {
        var target = new HdrHistogram(1, HighestTrackableValue, 3);
        var source = new HdrHistogram(1000, HighestTrackableValue, 2);
        source.RecordValueWithCount(5_000_000, 3);
        source.RecordValue(1500);
        source.RecordValue(0);

        target.Add(source);

        Assert.Equal(5, target.TotalCount);
        Assert.Equal(3, target.GetCountAtValue(source.LowestEquivalentValue(5_000_000)));
        Assert.Equal(1, target.GetCountAtValue(source.LowestEquivalentValue(1500)));
        Assert.Equal(1, target.GetCountAtValue(0));
        Assert.Equal(target.HighestEquivalentValue(source.LowestEquivalentValue(5_000_000)), target.GetMaxValue());
    }

    [Fact]
    public void Add_SameLayout_MergesExtremesAndTimestamps()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3) { StartTimeStamp = 5000, EndTimeStamp = 6000 };
        var other = new HdrHistogram(HighestTrackableValue, 3) { StartTimeStamp = 4000, EndTimeStamp = 5500 };
        histogram.RecordValue(500);
        other.RecordValue(20);
        other.RecordValue(90_000);

        histogram.Add(other);
        histogram.Add(new HdrHistogram(HighestTrackableValue, 3));

        Assert.Equal(20, histogram.GetMinValue());
        Assert.Equal(histogram.HighestEquivalentValue(90_000), histogram.GetMaxValue());
        Assert.Equal(4000, histogram.StartTimeStamp);
        Assert.Equal(6000, histogram.EndTimeStamp);
    }

    [Fact]
    public void Copy_RecordedHistogram_HasSameCountsAndMetadata()
    {
        var histogram = new HdrHistogram(1000, HighestTrackableValue, 4)
        {
            StartTimeStamp = 1000,
            EndTimeStamp = 2000,
            Tag = "worker-1",
        };
        histogram.RecordValueWithExpectedInterval(HighestTrackableValue - 1, 31_000);
        histogram.RecordValue(0);

        HdrHistogram copy = histogram.Copy();

        AssertSameCounts(histogram, copy);
        Assert.Equal(histogram.GetMinValue(), copy.GetMinValue());
        Assert.Equal(histogram.GetMinNonZeroValue(), copy.GetMinNonZeroValue());
        Assert.Equal(histogram.GetMaxValue(), copy.GetMaxValue());
        Assert.Equal(histogram.LowestDiscernibleValue, copy.LowestDiscernibleValue);
        Assert.Equal(histogram.NumberOfSignificantValueDigits, copy.NumberOfSignificantValueDigits);
        Assert.Equal(1000, copy.StartTimeStamp);
        Assert.Equal(2000, copy.EndTimeStamp);
        Assert.Equal("worker-1", copy.Tag);
    }

    [Fact]
    public void CopyCorrectedForCoordinatedOmission_StalledSample_AddsMissingSamplesPerCount()
    {
        var histogram = new HdrHistogram(HighestTrackableValue, 3);
        histogram.RecordValueWithCount(100, 3);
        histogram.RecordValueWithCount(400, 2);

        HdrHistogram corrected = histogram.CopyCorrectedForCoordinatedOmission(100);

        Assert.Equal(3 + 2, corrected.GetCountAtValue(100));
        Assert.Equal(2, corrected.GetCountAtValue(200));
        Assert.Equal(2, corrected.GetCountAtValue(300));
        Assert.Equal(2, corrected.GetCountAtValue(400));
        Assert.Equal(11, corrected.TotalCount);
        Assert.Equal(5, histogram.TotalCount);
    }

    internal static void AssertSameCounts(HdrHistogram expected, HdrHistogram actual)
    {
        Assert.Equal(expected.TotalCount, actual.TotalCount);
        Assert.Equal(expected.CountsArrayLength, actual.CountsArrayLength);
        for (int i = 0; i < expected.CountsArrayLength; i++)
        {
            Assert.Equal(expected.GetCountAtIndex(i), actual.GetCountAtIndex(i));
        }
    }
}
