using HdrHistogram;

namespace Forwarder.Bench.Histograms;

/// <summary>
/// Percentiles finer than the histogram's units. Latencies are recorded in whole microseconds, so a
/// 20 µs median moves in 5% steps; reading each unit as its counts spread evenly over it (the
/// grouped-data median) turns a shift of a fraction of a microsecond into a shift of the estimate.
/// </summary>
internal static class InterpolatedPercentile
{
    /// <summary>The value below which <paramref name="percentile"/>% of counts fall, in the histogram's units (a recorded value v stands for [v, v + 1)).</summary>
    public static double Of(HistogramBase histogram, double percentile)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(percentile);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percentile, 100);
        if (histogram.TotalCount == 0)
        {
            return 0;
        }

        var target = percentile / 100 * histogram.TotalCount;
        long before = 0;
        foreach (var step in histogram.RecordedValues())
        {
            var count = step.CountAtValueIteratedTo;
            if (before + count >= target)
            {
                var low = histogram.LowestEquivalentValue(step.ValueIteratedTo);
                var width = step.ValueIteratedTo + 1 - low;
                return low + ((target - before) / count * width);
            }

            before += count;
        }

        return histogram.GetMaxValue() + 1;
    }
}
