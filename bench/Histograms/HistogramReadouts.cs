using HdrHistogram;

namespace Forwarder.Bench.Histograms;

/// <summary>
/// Readouts the HdrHistogram package lacks or gives differently from the Java reference, which .hgrm files,
/// wrk2 and our reports follow: its GetValueAtPercentile rounds the target count to nearest (Java rounds up)
/// and throws on an empty histogram, its GetMean divides by zero there, and it has no minimum.
/// </summary>
internal static class HistogramReadouts
{
    /// <summary>
    /// Java's getValueAtPercentile: the highest value equivalent to the bucket reaching the percentile's count
    /// (the lowest one for the 0th percentile); 0 when nothing was recorded.
    /// </summary>
    public static long ValueAt(this HistogramBase histogram, double percentile)
    {
        long total = histogram.TotalCount;
        if (total == 0)
        {
            return 0;
        }

        // Stepping just below the requested level keeps e.g. the 50th percentile of {1, 2} at 1, as in Java.
        double requested = Math.Clamp(Math.BitDecrement(percentile), 0.0, 100.0);
        long countAtPercentile = Math.Max((long)Math.Ceiling(requested * total / 100.0), 1);
        long running = 0;
        foreach (var step in histogram.RecordedValues())
        {
            running += step.CountAtValueIteratedTo;
            if (running >= countAtPercentile)
            {
                return percentile == 0.0 ? histogram.LowestEquivalentValue(step.ValueIteratedTo) : step.ValueIteratedTo;
            }
        }

        return histogram.GetMaxValue();
    }

    /// <summary>Java's getMinValue: the lowest value equivalent to the first recorded bucket; 0 when empty.</summary>
    public static long GetMinValue(this HistogramBase histogram)
    {
        foreach (var step in histogram.RecordedValues())
        {
            return histogram.LowestEquivalentValue(step.ValueIteratedTo);
        }

        return 0;
    }

    /// <summary>Java's getMaxValue: the highest value equivalent to the last recorded bucket; 0 when empty.</summary>
    public static long Max(this HistogramBase histogram) => histogram.TotalCount == 0 ? 0 : histogram.GetMaxValue();

    /// <summary>The mean with each bucket at its middle, as Java; 0 (not NaN) when empty.</summary>
    public static double Mean(this HistogramBase histogram) => histogram.TotalCount == 0 ? 0.0 : histogram.GetMean();

    /// <summary>The standard deviation around <see cref="Mean"/>; 0 when empty.</summary>
    public static double StdDeviation(this HistogramBase histogram) => histogram.TotalCount == 0 ? 0.0 : histogram.GetStdDeviation();
}
