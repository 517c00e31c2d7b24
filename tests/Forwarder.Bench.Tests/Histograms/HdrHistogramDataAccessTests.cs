using Forwarder.Bench.Histograms;

namespace Forwarder.Bench.Tests.Histograms;

/// <summary>
/// The data set of Java's HistogramDataAccessTest: 100 seconds of 1 ms results sampled 100 times a second
/// (10,000 results of 1,000 us), then a 100 second stall recorded as one 100,000,000 us result. With an
/// expected interval of 10 ms the stall is corrected into 10,000 more samples (10 ms, 20 ms, ... 100 s).
/// Assertions use the published expectations (0.1% tolerance) and, where exact, the bucket values.
/// </summary>
public sealed class HdrHistogramDataAccessTests
{
    private const long HighestTrackableValue = 3600L * 1000 * 1000;
    private const long ExpectedInterval = 10_000;

    private static readonly HdrHistogram Corrected = new(HighestTrackableValue, 3);
    private static readonly HdrHistogram Raw = new(HighestTrackableValue, 3);
    private static readonly HdrHistogram ScaledCorrected = new(1000, HighestTrackableValue * 512, 3);
    private static readonly HdrHistogram ScaledRaw = new(1000, HighestTrackableValue * 512, 3);
    private static readonly HdrHistogram PostCorrected;
    private static readonly HdrHistogram PostCorrectedScaled;

    static HdrHistogramDataAccessTests()
    {
        for (int i = 0; i < 10_000; i++)
        {
            Corrected.RecordValueWithExpectedInterval(1000, ExpectedInterval);
            ScaledCorrected.RecordValueWithExpectedInterval(1000 * 512, ExpectedInterval * 512);
            Raw.RecordValue(1000);
            ScaledRaw.RecordValue(1000 * 512);
        }

        Corrected.RecordValueWithExpectedInterval(100_000_000, ExpectedInterval);
        ScaledCorrected.RecordValueWithExpectedInterval(100_000_000L * 512, ExpectedInterval * 512);
        Raw.RecordValue(100_000_000);
        ScaledRaw.RecordValue(100_000_000L * 512);
        PostCorrected = Raw.CopyCorrectedForCoordinatedOmission(ExpectedInterval);
        PostCorrectedScaled = ScaledRaw.CopyCorrectedForCoordinatedOmission(ExpectedInterval * 512);
    }

    [Fact]
    public void TotalCount_RawAndCorrected_MatchPublished()
    {
        Assert.Equal(10_001, Raw.TotalCount);
        Assert.Equal(20_000, Corrected.TotalCount);
        Assert.Equal(20_000, PostCorrected.TotalCount);
        Assert.Equal(20_000, ScaledCorrected.TotalCount);
        Assert.Equal(20_000, PostCorrectedScaled.TotalCount);
    }

    [Fact]
    public void GetMaxValue_Corrected_EquivalentTo100Seconds()
    {
        Assert.True(Corrected.ValuesAreEquivalent(100_000_000, Corrected.GetMaxValue()));
        // The highest value of 100,000,000's bucket (HdrHistogram_py prints it as 100007.935 ms).
        Assert.Equal(100_007_935, Corrected.GetMaxValue());
        Assert.Equal(100_007_935, Raw.GetMaxValue());
    }

    [Fact]
    public void GetMinValue_Corrected_EquivalentTo1Millisecond()
    {
        Assert.True(Corrected.ValuesAreEquivalent(1000, Corrected.GetMinValue()));
        Assert.Equal(1000, Corrected.GetMinValue());
        Assert.Equal(1000, Raw.GetMinValue());
    }

    [Fact]
    public void GetMean_RawAndCorrected_WithinPublishedTolerance()
    {
        double expectedRawMean = ((10_000.0 * 1000) + (1.0 * 100_000_000)) / 10_001;
        double expectedMean = (1000.0 + 50_000_000.0) / 2;

        Assert.InRange(Raw.GetMean(), expectedRawMean * 0.999, expectedRawMean * 1.001);
        Assert.InRange(Corrected.GetMean(), expectedMean * 0.999, expectedMean * 1.001);
        Assert.InRange(PostCorrected.GetMean(), expectedMean * 0.999, expectedMean * 1.001);
    }

    [Fact]
    public void GetStdDeviation_RawAndCorrected_WithinPublishedTolerance()
    {
        double expectedRawMean = ((10_000.0 * 1000) + (1.0 * 100_000_000)) / 10_001;
        double expectedRawStdDev = Math.Sqrt(
            ((10_000.0 * Math.Pow(1000.0 - expectedRawMean, 2)) + Math.Pow(100_000_000.0 - expectedRawMean, 2)) / 10_001);
        double expectedMean = (1000.0 + 50_000_000.0) / 2;
        double squaredDeviations = 10_000 * Math.Pow(1000.0 - expectedMean, 2);
        for (long value = 10_000; value <= 100_000_000; value += 10_000)
        {
            squaredDeviations += Math.Pow(value - expectedMean, 2);
        }

        double expectedStdDev = Math.Sqrt(squaredDeviations / 20_000);

        Assert.InRange(Raw.GetStdDeviation(), expectedRawStdDev * 0.999, expectedRawStdDev * 1.001);
        Assert.InRange(Corrected.GetStdDeviation(), expectedStdDev * 0.999, expectedStdDev * 1.001);
    }

    [Theory]
    [InlineData(30.0, 1000.0)]
    [InlineData(99.0, 1000.0)]
    [InlineData(99.99, 1000.0)]
    [InlineData(99.999, 100_000_000.0)]
    [InlineData(100.0, 100_000_000.0)]
    public void GetValueAtPercentile_Raw_MatchesPublished(double percentile, double expected)
    {
        Assert.InRange(Raw.GetValueAtPercentile(percentile), expected * 0.999, expected * 1.001);
    }

    [Theory]
    [InlineData(30.0, 1000.0)]
    [InlineData(50.0, 1000.0)]
    [InlineData(75.0, 50_000_000.0)]
    [InlineData(90.0, 80_000_000.0)]
    [InlineData(99.0, 98_000_000.0)]
    [InlineData(99.999, 100_000_000.0)]
    [InlineData(100.0, 100_000_000.0)]
    public void GetValueAtPercentile_Corrected_MatchesPublished(double percentile, double expected)
    {
        Assert.InRange(Corrected.GetValueAtPercentile(percentile), expected * 0.999, expected * 1.001);
        Assert.InRange(PostCorrected.GetValueAtPercentile(percentile), expected * 0.999, expected * 1.001);
    }

    [Fact]
    public void GetValueAtPercentile_Raw_ExactBucketValues()
    {
        Assert.Equal(1000, Raw.GetValueAtPercentile(99.99));
        Assert.Equal(100_007_935, Raw.GetValueAtPercentile(99.999));
        Assert.Equal(1000, Raw.GetValueAtPercentile(0));
    }

    [Fact]
    public void GetCountAtValue_RawAndCorrected_MatchPublished()
    {
        Assert.Equal(10_000, Raw.GetCountAtValue(1000));
        Assert.Equal(10_000, Corrected.GetCountAtValue(1000));
        Assert.Equal(0, Raw.GetCountAtValue(10_000));
        Assert.Equal(1, Corrected.GetCountAtValue(10_000));
    }

    [Fact]
    public void ScaledHistograms_SameData_AreEquivalentTimes512()
    {
        Assert.InRange(ScaledCorrected.GetMean(), Corrected.GetMean() * 512 * 0.999999, Corrected.GetMean() * 512 * 1.000001);
        Assert.Equal(
            ScaledCorrected.HighestEquivalentValue(Corrected.GetValueAtPercentile(99.0) * 512),
            ScaledCorrected.HighestEquivalentValue(ScaledCorrected.GetValueAtPercentile(99.0)));
        Assert.Equal(ScaledCorrected.HighestEquivalentValue(Corrected.GetMaxValue() * 512), ScaledCorrected.GetMaxValue());
        Assert.Equal(
            PostCorrected.LowestEquivalentValue(PostCorrected.GetValueAtPercentile(99.0)) * 512,
            PostCorrectedScaled.LowestEquivalentValue(PostCorrectedScaled.GetValueAtPercentile(99.0)));
        Assert.Equal(
            PostCorrectedScaled.HighestEquivalentValue(PostCorrected.GetMaxValue() * 512), PostCorrectedScaled.GetMaxValue());
    }

    [Fact]
    public void Percentiles_Corrected_EachStepMatchesGetValueAtPercentile()
    {
        int steps = 0;
        foreach (HistogramIterationValue v in Corrected.Percentiles(5))
        {
            Assert.Equal(Corrected.HighestEquivalentValue(Corrected.GetValueAtPercentile(v.Percentile)), v.ValueIteratedTo);
            steps++;
        }

        Assert.True(steps > 20);
    }

    [Fact]
    public void RecordedValues_Raw_TwoBuckets()
    {
        HistogramIterationValue[] values = Raw.RecordedValues().ToArray();

        Assert.Equal(2, values.Length);
        Assert.Equal(10_000, values[0].CountAddedInThisIterationStep);
        Assert.Equal(1, values[1].CountAddedInThisIterationStep);
        Assert.Equal(1000, values[0].ValueIteratedTo);
        Assert.Equal(100_007_935, values[1].ValueIteratedTo);
        Assert.Equal(1000, values[1].ValueIteratedFrom);
        Assert.Equal(100.0, values[1].Percentile);
    }

    [Fact]
    public void RecordedValues_Corrected_CountsMatchSteps()
    {
        long total = 0;
        int index = 0;
        foreach (HistogramIterationValue v in Corrected.RecordedValues())
        {
            if (index++ == 0)
            {
                Assert.Equal(10_000, v.CountAddedInThisIterationStep);
            }

            Assert.NotEqual(0, v.CountAtValueIteratedTo);
            Assert.Equal(v.CountAtValueIteratedTo, v.CountAddedInThisIterationStep);
            total += v.CountAddedInThisIterationStep;
            Assert.Equal(total, v.TotalCountToThisValue);
        }

        Assert.Equal(20_000, total);
    }
}
