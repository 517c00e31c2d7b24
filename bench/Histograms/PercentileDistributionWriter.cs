using HdrHistogram;
using HdrHistogram.Iteration;

namespace Forwarder.Bench.Histograms;

/// <summary>
/// Java's AbstractHistogram.outputPercentileDistribution: the ".hgrm" text that HdrHistogram's plotter and
/// wrk2 read, or its CSV variant, with Java's column widths and digits. The package's own
/// OutputPercentileDistribution differs from Java's text: .NET rounds the binary value (0.125 gives "0.12"),
/// it drops the 1/(1-Percentile) column from rows before the 100% one when the last value repeats, and an
/// empty histogram's mean is NaN.
/// </summary>
internal static class PercentileDistributionWriter
{
    /// <summary>
    /// Writes the percentile table (values divided by <paramref name="outputValueUnitScalingRatio"/>, with as
    /// many decimals as the histogram has significant digits) followed by the mean/max/bucket footer.
    /// </summary>
    public static void Write(
        TextWriter writer,
        HistogramBase histogram,
        int percentileTicksPerHalfDistance = 5,
        double outputValueUnitScalingRatio = 1.0)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(histogram);
        int digits = histogram.NumberOfSignificantValueDigits;
        writer.Write("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
        foreach (HistogramIterationValue step in histogram.Percentiles(percentileTicksPerHalfDistance))
        {
            double percentile = step.PercentileLevelIteratedTo / 100.0;
            writer.Write(JavaNumberFormat.Fixed(step.ValueIteratedTo / outputValueUnitScalingRatio, digits, 12));
            writer.Write(' ');
            writer.Write(JavaNumberFormat.Fixed(percentile, 12));
            writer.Write(' ');
            writer.Write(JavaNumberFormat.Integer(step.TotalCountToThisValue, 10));
            // The 100% row has no finite 1/(1-Percentile) and leaves the column out.
            if (step.PercentileLevelIteratedTo != 100.0)
            {
                writer.Write(' ');
                writer.Write(JavaNumberFormat.Fixed(1 / (1.0 - percentile), 2, 14));
            }

            writer.Write('\n');
        }

        string mean = JavaNumberFormat.Fixed(histogram.Mean() / outputValueUnitScalingRatio, digits, 12);
        string deviation = JavaNumberFormat.Fixed(histogram.StdDeviation() / outputValueUnitScalingRatio, digits, 12);
        string max = JavaNumberFormat.Fixed(histogram.Max() / outputValueUnitScalingRatio, digits, 12);
        writer.Write($"#[Mean    = {mean}, StdDeviation   = {deviation}]\n");
        writer.Write($"#[Max     = {max}, Total count    = {JavaNumberFormat.Integer(histogram.TotalCount, 12)}]\n");
        writer.Write(
            $"#[Buckets = {JavaNumberFormat.Integer(histogram.BucketCount, 12)}, " +
            $"SubBuckets     = {JavaNumberFormat.Integer(histogram.SubBucketCount, 12)}]\n");
    }

    /// <summary>The CSV variant (Java's useCsvFormat): a quoted header, the same rows, no footer.</summary>
    public static void WriteCsv(
        TextWriter writer,
        HistogramBase histogram,
        int percentileTicksPerHalfDistance = 5,
        double outputValueUnitScalingRatio = 1.0)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(histogram);
        int digits = histogram.NumberOfSignificantValueDigits;
        writer.Write("\"Value\",\"Percentile\",\"TotalCount\",\"1/(1-Percentile)\"\n");
        foreach (HistogramIterationValue step in histogram.Percentiles(percentileTicksPerHalfDistance))
        {
            double percentile = step.PercentileLevelIteratedTo / 100.0;
            writer.Write(JavaNumberFormat.Fixed(step.ValueIteratedTo / outputValueUnitScalingRatio, digits));
            writer.Write(',');
            writer.Write(JavaNumberFormat.Fixed(percentile, 12));
            writer.Write(',');
            writer.Write(JavaNumberFormat.Integer(step.TotalCountToThisValue, 0));
            writer.Write(',');
            writer.Write(step.PercentileLevelIteratedTo != 100.0 ? JavaNumberFormat.Fixed(1 / (1.0 - percentile), 2) : "Infinity");
            writer.Write('\n');
        }
    }
}
