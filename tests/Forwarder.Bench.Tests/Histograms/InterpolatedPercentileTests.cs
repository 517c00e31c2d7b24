using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Tests.Histograms;

public sealed class InterpolatedPercentileTests
{
    [Fact]
    public void CountsSpreadEvenlyOverEachUnit()
    {
        var histogram = new LongHistogram(3_600_000_000, 3);
        histogram.RecordValueWithCount(10, 100);
        histogram.RecordValueWithCount(11, 100);

        // 200 counts: the 50th falls half way into [10, 11), the 100th at its end.
        Assert.Equal(10.5, InterpolatedPercentile.Of(histogram, 25), 1e-9);
        Assert.Equal(11.0, InterpolatedPercentile.Of(histogram, 50), 1e-9);
        Assert.Equal(11.5, InterpolatedPercentile.Of(histogram, 75), 1e-9);
        Assert.Equal(12.0, InterpolatedPercentile.Of(histogram, 100), 1e-9);
    }

    [Fact]
    public void ASmallShiftOfTheMixMovesTheEstimate_WhereTheWholeUnitPercentileDoesNot()
    {
        var before = new LongHistogram(3_600_000_000, 3);
        before.RecordValueWithCount(20, 600);
        before.RecordValueWithCount(21, 400);
        var after = new LongHistogram(3_600_000_000, 3);
        after.RecordValueWithCount(20, 550);
        after.RecordValueWithCount(21, 450);

        Assert.Equal(before.GetValueAtPercentile(50), after.GetValueAtPercentile(50));
        Assert.True(InterpolatedPercentile.Of(after, 50) > InterpolatedPercentile.Of(before, 50));
    }

    [Fact]
    public void WideBuckets_InterpolateOverTheirWidth()
    {
        // With 3 significant digits, values near 10,000 share buckets 8 wide.
        var histogram = new LongHistogram(3_600_000_000, 3);
        histogram.RecordValueWithCount(10_000, 10);
        var low = histogram.LowestEquivalentValue(10_000);
        var width = histogram.SizeOfEquivalentValueRange(10_000);

        Assert.Equal(low + (width / 2.0), InterpolatedPercentile.Of(histogram, 50), 1e-9);
    }

    [Fact]
    public void Empty_IsZero() => Assert.Equal(0, InterpolatedPercentile.Of(new LongHistogram(1000, 3), 50));

    [Fact]
    public void OutOfRange_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => InterpolatedPercentile.Of(new LongHistogram(1000, 3), 101));
}
