using Forwarder.Bench.Histograms;

namespace Forwarder.Bench.Tests.Histograms;

public sealed class HistogramIterationTests
{
    // The rows of Java's output for 0, 1000, ..., 9000 at 3 digits and 5 ticks per half distance
    // (ReferenceData Sample_10kBy1k_3sf_TicksPerHour_asMs_5percPerHalfDistance.hgrm, before scaling).
    private static readonly (double Level, long Value, long TotalCount)[] JavaSampleSteps =
    [
        (0, 0, 1), (10, 0, 1), (20, 1000, 2), (30, 2000, 3), (40, 3001, 4), (50, 4001, 5), (55, 5003, 6),
        (60, 5003, 6), (65, 6003, 7), (70, 6003, 7), (75, 7003, 8), (77.5, 7003, 8), (80, 7003, 8),
        (82.5, 8003, 9), (85, 8003, 9), (87.5, 8003, 9), (88.75, 8003, 9), (90, 8003, 9), (91.25, 9007, 10),
        (100, 9007, 10),
    ];

    [Fact]
    public void Percentiles_JavaSample_StepsMatchJavaRows()
    {
        HdrHistogram histogram = TenValues(3);

        HistogramIterationValue[] steps = histogram.Percentiles(5).ToArray();

        Assert.Equal(JavaSampleSteps.Length, steps.Length);
        for (int i = 0; i < steps.Length; i++)
        {
            Assert.Equal(JavaSampleSteps[i].Level, steps[i].PercentileLevelIteratedTo, 1e-9);
            Assert.Equal(JavaSampleSteps[i].Value, steps[i].ValueIteratedTo);
            Assert.Equal(JavaSampleSteps[i].TotalCount, steps[i].TotalCountToThisValue);
            Assert.Equal(10.0 * JavaSampleSteps[i].TotalCount, steps[i].Percentile, 1e-9);
            Assert.Equal(i == 0 ? 0 : steps[i - 1].ValueIteratedTo, steps[i].ValueIteratedFrom);
        }
    }

    [Fact]
    public void Percentiles_JavaSample_CountsAddedSumToTotalAndFinalStepAddsNothing()
    {
        HdrHistogram histogram = TenValues(3);

        HistogramIterationValue[] steps = histogram.Percentiles(5).ToArray();

        Assert.Equal(histogram.TotalCount, steps.Sum(s => s.CountAddedInThisIterationStep));
        Assert.Equal(0, steps[^1].CountAddedInThisIterationStep);
        Assert.Equal(1, steps[^1].CountAtValueIteratedTo);
        Assert.Equal(100.0, steps[^1].PercentileLevelIteratedTo);
        // Sum of count times highest equivalent value: 0 + 1000 + 2000 + 3001 + 4001 + 5003 + ... + 9007.
        Assert.Equal(45_021, steps[^1].TotalValueToThisValue);
    }

    [Fact]
    public void Percentiles_SingleValue_ReportsItAtZeroAndHundredPercent()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);
        histogram.RecordValue(12_345);

        HistogramIterationValue[] steps = histogram.Percentiles(5).ToArray();

        Assert.Equal(2, steps.Length);
        Assert.Equal(0.0, steps[0].PercentileLevelIteratedTo);
        Assert.Equal(100.0, steps[1].PercentileLevelIteratedTo);
        Assert.All(steps, s => Assert.Equal(histogram.HighestEquivalentValue(12_345), s.ValueIteratedTo));
    }

    [Fact]
    public void Percentiles_EmptyHistogram_YieldsNothing()
    {
        Assert.Empty(new HdrHistogram(3_600_000_000L, 3).Percentiles(5));
    }

    [Fact]
    public void Percentiles_ZeroTicks_ThrowsArgumentOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new HdrHistogram(1000, 3).Percentiles(0));
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(10L)]
    [InlineData(100L)]
    [InlineData(1000L)]
    [InlineData(10_000L)]
    [InlineData(100_000L)]
    public void Percentiles_LinearValuesThousandTicks_StepsMatchGetValueAtPercentile(long length)
    {
        // Java's testValueAtPercentileMatchesPercentileIter.
        var histogram = new HdrHistogram(1, long.MaxValue, 2);
        for (long value = 1; value <= length; value++)
        {
            histogram.RecordValue(value);
        }

        foreach (HistogramIterationValue v in histogram.Percentiles(1000))
        {
            long calculated = histogram.GetValueAtPercentile(v.Percentile);
            Assert.True(
                histogram.ValuesAreEquivalent(calculated, v.ValueIteratedTo),
                $"length {length}, percentile {v.Percentile}: {calculated} vs {v.ValueIteratedTo}");
        }
    }

    [Fact]
    public void RecordedValues_ThreeBuckets_ReportsEachWithRunningTotals()
    {
        var histogram = new HdrHistogram(3_600_000_000L, 3);
        histogram.RecordValueWithCount(1, 2);
        histogram.RecordValue(5000);
        histogram.RecordValue(5001);
        histogram.RecordValue(1_000_000);

        HistogramIterationValue[] values = histogram.RecordedValues().ToArray();

        Assert.Equal(
            [
                new HistogramIterationValue(1, 0, 2, 2, 2, 2, 40.0, 40.0),
                new HistogramIterationValue(5003, 1, 2, 2, 4, 2 + (2 * 5003), 80.0, 80.0),
                new HistogramIterationValue(1_000_447, 5003, 1, 1, 5, 2 + (2 * 5003) + 1_000_447, 100.0, 100.0),
            ],
            values);
    }

    [Fact]
    public void RecordedValues_ZeroValue_IsReported()
    {
        var histogram = new HdrHistogram(1000, 3);
        histogram.RecordValue(0);

        HistogramIterationValue value = Assert.Single(histogram.RecordedValues());

        Assert.Equal(0, value.ValueIteratedTo);
        Assert.Equal(1, value.CountAtValueIteratedTo);
        Assert.Equal(100.0, value.Percentile);
    }

    private static HdrHistogram TenValues(int digits)
    {
        var histogram = new HdrHistogram(36_000_000_000L, digits);
        for (long value = 0; value < 10_000; value += 1000)
        {
            histogram.RecordValue(value);
        }

        return histogram;
    }
}
