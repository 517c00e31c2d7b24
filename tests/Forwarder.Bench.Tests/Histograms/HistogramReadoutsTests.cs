using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Tests.Histograms;

/// <summary>
/// The readouts against Java's HistogramDataAccessTest data set: 100 seconds of 1 ms results sampled 100
/// times a second (10,000 results of 1,000 us), then a 100 second stall recorded as one 100,000,000 us
/// result; with an expected interval of 10 ms the stall is corrected into 10,000 more samples by the
/// package's RecordValueWithExpectedInterval. Published expectations hold to 0.1%, bucket values exactly.
/// </summary>
public sealed class HistogramReadoutsTests
{
    private const long HighestTrackableValue = 3600L * 1000 * 1000;
    private const long ExpectedInterval = 10_000;

    private static readonly LongHistogram Corrected = new(HighestTrackableValue, 3);
    private static readonly LongHistogram Raw = new(HighestTrackableValue, 3);

    static HistogramReadoutsTests()
    {
        for (int i = 0; i < 10_000; i++)
        {
            Corrected.RecordValueWithExpectedInterval(1000, ExpectedInterval);
            Raw.RecordValue(1000);
        }

        Corrected.RecordValueWithExpectedInterval(100_000_000, ExpectedInterval);
        Raw.RecordValue(100_000_000);
    }

    [Theory]
    [InlineData(30.0, 1000.0)]
    [InlineData(99.0, 1000.0)]
    [InlineData(99.99, 1000.0)]
    [InlineData(99.999, 100_000_000.0)]
    [InlineData(100.0, 100_000_000.0)]
    public void ValueAt_Raw_MatchesPublished(double percentile, double expected)
    {
        Assert.InRange(Raw.ValueAt(percentile), expected * 0.999, expected * 1.001);
    }

    [Theory]
    [InlineData(30.0, 1000.0)]
    [InlineData(50.0, 1000.0)]
    [InlineData(75.0, 50_000_000.0)]
    [InlineData(90.0, 80_000_000.0)]
    [InlineData(99.0, 98_000_000.0)]
    [InlineData(99.999, 100_000_000.0)]
    [InlineData(100.0, 100_000_000.0)]
    public void ValueAt_Corrected_MatchesPublished(double percentile, double expected)
    {
        Assert.Equal(20_000, Corrected.TotalCount);
        Assert.InRange(Corrected.ValueAt(percentile), expected * 0.999, expected * 1.001);
    }

    [Fact]
    public void ValueAt_Raw_ExactBucketValues()
    {
        Assert.Equal(1000, Raw.ValueAt(99.99));
        Assert.Equal(100_007_935, Raw.ValueAt(99.999));
        Assert.Equal(1000, Raw.ValueAt(0));
    }

    [Fact]
    public void ValueAt_TinyDataSet_RoundsTheCountUpLikeJava()
    {
        var histogram = new LongHistogram(3_600_000_000L, 3);
        histogram.RecordValue(1);
        histogram.RecordValue(2);

        Assert.Equal(1, histogram.ValueAt(50.0));
        Assert.Equal(1, histogram.ValueAt(50.00000000000001));
        Assert.Equal(2, histogram.ValueAt(50.0000000000001));

        histogram.RecordValue(2);
        histogram.RecordValue(2);
        histogram.RecordValue(2);

        // 25% of 5 is 1.25 counts: Java rounds up to the second count (2); rounding to nearest would give 1.
        Assert.Equal(2, histogram.ValueAt(25));
        Assert.Equal(2, histogram.ValueAt(30));
    }

    [Fact]
    public void ValueAt_ZeroPercentile_ReportsLowestEquivalentValue()
    {
        var histogram = new LongHistogram(HighestTrackableValue, 3);
        histogram.RecordValue(10_007);

        Assert.Equal(10_000, histogram.ValueAt(0));
        Assert.Equal(10_007, histogram.ValueAt(1));
    }

    [Fact]
    public void MinMaxMean_RawAndCorrected_MatchPublished()
    {
        double expectedRawMean = ((10_000.0 * 1000) + (1.0 * 100_000_000)) / 10_001;
        double expectedMean = (1000.0 + 50_000_000.0) / 2;

        Assert.Equal(1000, Corrected.GetMinValue());
        Assert.Equal(1000, Raw.GetMinValue());
        // The highest value of 100,000,000's bucket (HdrHistogram_py prints it as 100007.935 ms).
        Assert.Equal(100_007_935, Corrected.Max());
        Assert.Equal(100_007_935, Raw.Max());
        Assert.InRange(Raw.Mean(), expectedRawMean * 0.999, expectedRawMean * 1.001);
        Assert.InRange(Corrected.Mean(), expectedMean * 0.999, expectedMean * 1.001);
    }

    [Fact]
    public void MeanAndStdDeviation_FourValues_MatchPythonReference()
    {
        var histogram = new LongHistogram(HighestTrackableValue, 3);
        foreach (long value in new long[] { 1000, 1000, 3000, 3000 })
        {
            histogram.RecordValue(value);
        }

        // 3000 sits in a 2-wide bucket whose median is 3001.
        Assert.Equal(2000.5, histogram.Mean());
        Assert.Equal(1000.5, histogram.StdDeviation());
    }

    [Fact]
    public void EmptyHistogram_Readouts_AreZero()
    {
        var histogram = new LongHistogram(1000, HighestTrackableValue, 3);

        Assert.Equal(0, histogram.GetMinValue());
        Assert.Equal(0, histogram.Max());
        Assert.Equal(0.0, histogram.Mean());
        Assert.Equal(0.0, histogram.StdDeviation());
        Assert.Equal(0, histogram.ValueAt(99.99));
    }

    [Fact]
    public void GetMinValue_ZeroRecorded_IsZero()
    {
        var histogram = new LongHistogram(HighestTrackableValue, 3);

        histogram.RecordValue(0);
        histogram.RecordValue(5000);

        Assert.Equal(0, histogram.GetMinValue());
    }
}
