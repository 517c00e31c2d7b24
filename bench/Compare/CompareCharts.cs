using Forwarder.Bench.Reports;
using HdrHistogram;

namespace Forwarder.Bench.Compare;

/// <summary>
/// The charts of one rate in a comparison report: latency by percentile (every repetition merged),
/// throughput, proxy CPU and memory per arm (median with the repetitions' spread), and throughput,
/// CPU and memory over the measured window of each arm's first repetition.
/// </summary>
internal static class CompareCharts
{
    private const double MiB = 1048576.0;

    public static IReadOnlyList<(string File, string Svg)> For(CompareResult result, double? rate, string label, string slug)
    {
        var arms = result.Arms.Where(a => result.Of(a, rate).Count > 0).ToArray();
        var proxies = arms.Where(a => a != "direct").ToArray();
        var first = arms.ToDictionary(a => a, a => result.Of(a, rate).MinBy(r => r.Rep)!);
        return
        [
            ($"latency-{slug}.svg", Charts.LatencyByPercentile($"Latency by percentile, {label}", [.. arms.Select(a => Latency(result, a, rate))])),
            ($"throughput-{slug}.svg", Charts.Bars($"Throughput, {label}", "req/s", [.. arms.Select(a => Bar(a, result.Of(a, rate).Select(r => r.Stats.RequestsPerSecond)))])),
            ($"cpu-{slug}.svg", Charts.Bars($"Proxy CPU per 1,000 requests, {label}", "ms", [.. proxies.Select(a => Bar(a, result.Of(a, rate).Select(r => r.CpuMsPerThousand ?? 0)))])),
            ($"memory-{slug}.svg", Charts.Bars($"Proxy resident memory (peak), {label}", "MiB", [.. proxies.Select(a => Bar(a, result.Of(a, rate).Select(r => (r.PeakRssBytes ?? 0) / MiB)))])),
            ($"throughput-time-{slug}.svg", Charts.OverTime($"Throughput over time, {label} (repetition 1)", "req/s", [.. arms.Select(a => Throughput(first[a]))])),
            ($"cpu-time-{slug}.svg", Charts.OverTime($"Proxy CPU over time, {label} (repetition 1)", "% of one core", [.. proxies.Select(a => Cpu(first[a]))])),
            ($"memory-time-{slug}.svg", Charts.OverTime($"Proxy resident memory over time, {label} (repetition 1)", "MiB", [.. proxies.Select(a => Memory(first[a]))])),
        ];
    }

    /// <summary>Completions in each whole second of the window, at the second's end; a last partial second is left out.</summary>
    internal static TimeSeries Throughput(ArmRun run)
    {
        var whole = (int)Math.Floor(run.Stats.Duration.TotalSeconds);
        return new TimeSeries(run.Arm, [.. run.Stats.CompletedPerSecond.Take(whole).Select((count, second) => (second + 1.0, (double)count))]);
    }

    /// <summary>CPU used over spans of at least a second (the kernel counts it in 10 ms ticks), at each span's end.</summary>
    internal static TimeSeries Cpu(ArmRun run)
    {
        var points = new List<(double, double)>();
        var samples = run.Resources ?? [];
        var from = new ResourceSample(0, 0, 0);
        foreach (var sample in samples)
        {
            if (sample.Seconds - from.Seconds >= 1)
            {
                points.Add((sample.Seconds, 100 * (sample.CpuSeconds - from.CpuSeconds) / (sample.Seconds - from.Seconds)));
                from = sample;
            }
        }

        return new TimeSeries(run.Arm, points);
    }

    internal static TimeSeries Memory(ArmRun run) =>
        new(run.Arm, [.. (run.Resources ?? []).Select(s => (s.Seconds, s.RssBytes / MiB))]);

    private static LatencySeries Latency(CompareResult result, string arm, double? rate)
    {
        var histogram = result.MergedLatency(arm, rate);
        return new LatencySeries(arm, histogram.TotalCount == 0 ? [] : [.. histogram.Percentiles(5).Select(v => (v.PercentileLevelIteratedTo, v.ValueIteratedTo / 1000.0))]);
    }

    private static Bar Bar(string arm, IEnumerable<double> values)
    {
        var spread = CompareReportWriter.Spread(values);
        return new Bar(arm, spread.Median, spread.Min, spread.Max);
    }
}
