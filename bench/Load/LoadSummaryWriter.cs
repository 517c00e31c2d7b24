using System.Globalization;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Scenarios;
using HdrHistogram;

namespace Forwarder.Bench.Load;

/// <summary>The console summary, laid out like wrk2's so its readers find their way; its last line is wrk's <c>Requests/sec:</c> line, for scripts.</summary>
internal static class LoadSummaryWriter
{
    public static readonly double[] Percentiles = [50, 75, 90, 99, 99.9, 99.99, 99.999, 100];

    public static void Write(TextWriter output, LoadOptions options, ScenarioStats stats)
    {
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine("  Latency    Avg        Stdev      Max");
        output.WriteLine(string.Create(invariant, $"    {Format.Latency(stats.Latency.GetMean()),-10} {Format.Latency(stats.Latency.GetStdDeviation()),-10} {Format.Latency(stats.Latency.Max())}"));
        WriteDistribution(output, options.OpenLoop ? "Latency Distribution (HdrHistogram - Recorded Latency, corrected for coordinated omission)" : "Latency Distribution (HdrHistogram - Recorded Latency)", stats.Latency);
        if (options.OpenLoop)
        {
            WriteDistribution(output, "Latency Distribution (HdrHistogram - Uncorrected Latency, measured from actual send)", stats.UncorrectedLatency);
        }

        output.WriteLine(string.Create(invariant, $"  {stats.Count} requests in {Format.Duration(stats.Duration)}, {Format.Bytes(stats.Bytes)} read"));
        if (stats.Failed > 0)
        {
            output.WriteLine(string.Create(invariant, $"  Errors: {stats.Failed} ({stats.TimedOut} timeouts)"));
            foreach (var (message, count) in stats.Failures.OrderByDescending(f => f.Value))
            {
                output.WriteLine(string.Create(invariant, $"    {count,10}  {message}"));
            }
        }

        if (stats.Unfinished > 0)
        {
            output.WriteLine(string.Create(invariant, $"  Unfinished: {stats.Unfinished} of {stats.Count} requests not sent or not answered {Format.Duration(stats.GracePeriod)} after the end; counted as timeouts, latency up to then"));
        }

        if (stats.RequestedRate is { } requested)
        {
            output.WriteLine(string.Create(invariant, $"  Requested rate: {requested:0.00} req/s, achieved {stats.AchievedShare:0.0%}"));
            if (!stats.RateAchieved)
            {
                output.WriteLine(string.Create(invariant, $"  RATE NOT ACHIEVED: {stats.AchievedShare:0.0%} of the requested rate completed (a run needs {ScenarioStats.MinimumAchievedShare:0%}); the run fails"));
            }
        }

        output.WriteLine(string.Create(invariant, $"Transfer/sec: {Format.Bytes(stats.BytesPerSecond),10}"));
        output.WriteLine(string.Create(invariant, $"Requests/sec: {stats.RequestsPerSecond,10:0.00}"));
    }

    private static void WriteDistribution(TextWriter output, string title, HistogramBase histogram)
    {
        output.WriteLine($"  {title}");
        foreach (var percentile in Percentiles)
        {
            var value = histogram.TotalCount == 0 ? 0 : histogram.ValueAt(percentile);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $" {percentile,7:0.000}%  {Format.Latency(value),10}"));
        }
    }
}
