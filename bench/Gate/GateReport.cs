using System.Globalization;
using System.Text;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>The gate's verdict as a console table and as markdown for CI pages.</summary>
internal static class GateReport
{
    public static bool Passed(IReadOnlyList<MetricVerdict> verdicts) => verdicts.All(v => v.Outcome != GateOutcome.Worse);

    public static string Table(IReadOnlyList<MetricVerdict> verdicts)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"metric",-28} {"base",9} {"current",9} {"change",8} {"allowed",9} {"p(worse)",9}  verdict");
        foreach (var v in verdicts)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{v.Metric.Name,-28} {Overhead(v.Metric.Kind, v.BaselineOverhead),9} {Overhead(v.Metric.Kind, v.CurrentOverhead),9} {Change(v),8} {Points(v.Metric.Kind, v.AllowedGrowth),9} {v.PWorse,9:0.0000}  {Word(v.Outcome)}");
        }

        return text.ToString();
    }

    public static string Markdown(IReadOnlyList<MetricVerdict> verdicts, GateSettings settings, string baseCommit, IReadOnlyList<GateSample> baseSamples, IReadOnlyList<GateSample> current, GatePolicy policy, string machine)
    {
        var reps = current.Select(s => s.Rep).Distinct().Count();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## Latency gate: {(Passed(verdicts) ? "pass" : "REGRESSION")}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Overhead is the forwarder's cost over no proxy, measured in the same repetition with every process on one CPU: latency (proxy / direct − 1) in a closed loop of {settings.Connections} connection(s), throughput (direct / proxy − 1) in a closed loop of {settings.MaxConnections}, open-loop p99 at {settings.OpenRate:0} req/s counted from each request's intended start, and the resident memory of the arm's processes after the repetition. Arms: forwarder (tcp listener), forwarder-l7 (http listener), forwarder-link (a tcp listener on one node, the service on another across a node link), forwarder-h2 (the native HTTP/2 front to an h2c backend, h2c load; its ratios are to direct-h2, the same h2c load straight to that backend).");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Base: {baseCommit}, built and run beside the current build in the same session, {reps} repetitions each, interleaved, on {machine}. Rule: {policy.Describe()}.");
        text.AppendLine();
        text.AppendLine("| metric | base overhead | current overhead | change | allowed growth | p (worse) | verdict |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---|");
        foreach (var v in verdicts)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {v.Metric.Name} | {Overhead(v.Metric.Kind, v.BaselineOverhead)} | {Overhead(v.Metric.Kind, v.CurrentOverhead)} | {Change(v)} | {Points(v.Metric.Kind, v.AllowedGrowth)} | {v.PWorse:0.0000} | {(v.Outcome == GateOutcome.Worse ? "**worse**" : Word(v.Outcome))} |");
        }

        text.AppendLine();
        text.AppendLine("Medians of the repetitions:");
        text.AppendLine();
        text.AppendLine("| build | arm | p50 | p99 | closed-loop req/s | open-loop p99 | memory |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var (build, samples) in new[] { ("base", baseSamples), ("current", current) })
        {
            foreach (var arm in samples.Select(s => s.Arm).Distinct())
            {
                var of = samples.Where(s => s.Arm == arm).ToArray();
                text.AppendLine(CultureInfo.InvariantCulture, $"| {(GateMetric.IsDirect(arm) ? "-" : build)} | {arm} | {CompareReportWriter.Median([.. of.Select(s => s.P50Us)]):0} µs | {CompareReportWriter.Median([.. of.Select(s => s.P99Us)]):0} µs | {CompareReportWriter.Median([.. of.Select(s => s.MaxRps)]):0} | {CompareReportWriter.Median([.. of.Select(s => s.OpenP99Us)]):0} µs | {(of.Any(s => s.RssMiB is null) ? "-" : $"{CompareReportWriter.Median([.. of.Select(s => s.RssMiB!.Value)]):0.0} MiB")} |");
            }
        }

        return text.ToString();
    }

    // Memory is its own figure in MiB (no proxy has none); the rest are shares of the direct arm's.
    public static string Overhead(GateMetricKind kind, double overhead)
        => kind == GateMetricKind.Rss ? overhead.ToString("0.0' MiB'", CultureInfo.InvariantCulture) : Signed(overhead);

    private static string Points(GateMetricKind kind, double points)
        => kind == GateMetricKind.Rss ? points.ToString("+0.0' MiB'", CultureInfo.InvariantCulture) : (points * 100).ToString("+0.0' pts'", CultureInfo.InvariantCulture);

    private static string Change(MetricVerdict v) => double.IsNaN(v.Change) ? "n/a" : Signed(v.Change);

    // Rounded first: a tiny negative would otherwise print as "-+0.0%".
    public static string Signed(double share)
    {
        var rounded = Math.Round(share, 3);
        return (rounded < 0 ? "-" : "+") + Math.Abs(rounded).ToString("0.0%", CultureInfo.InvariantCulture);
    }

    private static string Word(GateOutcome outcome) => outcome switch
    {
        GateOutcome.Worse => "WORSE",
        GateOutcome.Better => "better",
        _ => "same",
    };
}
