using System.Globalization;
using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>A scenario's results as a console table, NBomber-style: the scenario, each step, and the thresholds.</summary>
internal static class ScenarioReportWriter
{
    public static void Write(TextWriter output, ScenarioStats stats)
    {
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(invariant, $"scenario: {stats.Name}, duration {stats.Duration.TotalSeconds:0.##} s{(stats.RequestedRate is { } rate ? $", requested {rate:0.##}/s" : string.Empty)}"));
        output.WriteLine("  step       ok        fail  timeout   rps        min       mean      max       p50       p75       p95       p99       p99.9     bytes");
        Row(output, "(all)", stats.Ok, stats.Failed, stats.TimedOut, stats.RequestsPerSecond, stats.Latency, stats.Bytes);
        foreach (var step in stats.Steps.Values.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            Row(output, step.Name, step.Ok, step.Failed, step.Unfinished, stats.Duration > TimeSpan.Zero ? (step.Ok + step.Failed - step.Unfinished) / stats.Duration.TotalSeconds : 0, step.Latency, step.Bytes);
        }

        if (stats.Unfinished > 0)
        {
            output.WriteLine(string.Create(invariant, $"  unfinished: {stats.Unfinished} of {stats.Count} invocations not done {stats.GracePeriod.TotalSeconds:0.###} s after the end (counted as timeouts, latency up to then)"));
        }

        if (!stats.RateAchieved)
        {
            output.WriteLine(string.Create(invariant, $"  rate NOT achieved: {stats.AchievedShare:0.0%} of the requested rate completed (a run needs {ScenarioStats.MinimumAchievedShare:0%})"));
        }

        foreach (var (message, count) in stats.Failures.OrderByDescending(f => f.Value))
        {
            output.WriteLine(string.Create(invariant, $"  failure x{count}: {message}"));
        }

        foreach (var threshold in stats.Thresholds)
        {
            output.WriteLine($"  threshold {(threshold.Passed ? "passed" : "FAILED")}: {threshold.Description}");
        }
    }

    private static void Row(TextWriter output, string name, long ok, long failed, long timedOut, double rps, HistogramBase latency, long bytes)
    {
        string Ms(long microseconds) => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1000.0:0.000}");
        string At(double percentile) => latency.TotalCount == 0 ? "-" : Ms(latency.ValueAt(percentile));
        var empty = latency.TotalCount == 0;
        output.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  {name,-10} {ok,-9} {failed,-5} {timedOut,-8} {rps,-10:0.0} {(empty ? "-" : Ms(latency.GetMinValue())),-9} {(empty ? "-" : string.Create(CultureInfo.InvariantCulture, $"{latency.Mean() / 1000:0.000}")),-9} {(empty ? "-" : Ms(latency.Max())),-9} {At(50),-9} {At(75),-9} {At(95),-9} {At(99),-9} {At(99.9),-9} {bytes}"));
    }
}
