using System.Globalization;

namespace Forwarder.Bench.Scenarios;

/// <summary>A scenario's results as a console table, NBomber-style: the scenario, each step, and the thresholds; and the live line printed at each reporting interval.</summary>
public static class ScenarioReportWriter
{
    /// <summary>Writes the table of <paramref name="stats"/>, its failures, abort and thresholds.</summary>
    public static void Write(TextWriter output, ScenarioStats stats)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(stats);
        var invariant = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(invariant, $"scenario: {stats.Name}, duration {stats.Duration.TotalSeconds:0.##} s{(stats.RequestedRate is { } rate ? $", requested {rate:0.##}/s" : string.Empty)}"));
        output.WriteLine("  step       ok        fail  timeout   rps        min       mean      max       p50       p75       p95       p99       p99.9     bytes     status codes");
        foreach (var row in ReportRow.Of(stats))
        {
            output.WriteLine(string.Create(invariant, $"  {row.Name,-10} {row.Ok,-9} {row.Failed,-5} {row.TimedOut,-8} {row.Rps,-10} {row.Min,-9} {row.Mean,-9} {row.Max,-9} {row.At(50),-9} {row.At(75),-9} {row.At(95),-9} {row.At(99),-9} {row.At(99.9),-9} {row.Bytes,-9} {row.StatusCodeList}").TrimEnd());
        }

        foreach (var line in Notes(stats))
        {
            output.WriteLine($"  {line}");
        }
    }

    /// <summary>One line of the stats so far, for the reporting interval.</summary>
    public static void WriteLive(TextWriter output, ScenarioStats stats)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(stats);
        var steps = string.Concat(stats.Steps.Values.OrderBy(s => s.Name, StringComparer.Ordinal).Select(s => string.Create(
            CultureInfo.InvariantCulture, $"; {s.Name}: ok {s.Ok} fail {s.Failed} p99 {s.LatencyAtPercentile(99).TotalMilliseconds:0.###} ms")));
        output.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"[{stats.Name} {stats.Duration.TotalSeconds:0.0} s] ok {stats.Ok} fail {stats.Failed} rps {stats.RequestsPerSecond:0.0} p50 {stats.LatencyAtPercentile(50).TotalMilliseconds:0.###} ms p99 {stats.LatencyAtPercentile(99).TotalMilliseconds:0.###} ms{steps}"));
    }

    /// <summary>What the table does not show: abort, unfinished invocations, a missed rate, failures by message, thresholds.</summary>
    internal static IEnumerable<string> Notes(ScenarioStats stats)
    {
        var invariant = CultureInfo.InvariantCulture;
        if (stats.Abort is { } abort)
        {
            yield return string.Create(invariant, $"ABORTED at {abort.At.TotalSeconds:0.0##} s: threshold broke: {abort.Description}");
        }

        if (stats.Unfinished > 0)
        {
            yield return string.Create(invariant, $"unfinished: {stats.Unfinished} of {stats.Count} invocations not done {stats.GracePeriod.TotalSeconds:0.###} s after the {(stats.Abort is null ? "end" : "abort")} (counted as timeouts, latency up to then)");
        }

        if (!stats.RateAchieved)
        {
            yield return string.Create(invariant, $"rate NOT achieved: {stats.AchievedShare:0.0%} of the requested rate completed (a run needs {ScenarioStats.MinimumAchievedShare:0%})");
        }

        foreach (var (message, count) in stats.Failures.OrderByDescending(f => f.Value))
        {
            yield return string.Create(invariant, $"failure x{count}: {message}");
        }

        foreach (var threshold in stats.Thresholds)
        {
            yield return $"threshold {(threshold.Passed ? "passed" : "FAILED")}: {threshold.Description}";
        }
    }
}
