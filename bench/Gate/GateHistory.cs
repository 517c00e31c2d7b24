using System.Globalization;

namespace Forwarder.Bench.Gate;

/// <summary>
/// The trend record (perf-reports/history/gate.tsv): one line per gate run of a landed commit with
/// the current build's overheads over no proxy. Overheads on different machines differ by up to a
/// quarter, so the record shows drift over many commits; the gate itself compares with its base.
/// </summary>
internal static class GateHistory
{
    public const string Header = "date\tcommit\tbase\tl4_p50_overhead\tl7_p50_overhead\tl7_throughput_overhead\tl4_open_p99_overhead\tl7_open_p99_overhead\tlink_p50_overhead\tlink_throughput_overhead\tl4_rss_mib\tl7_rss_mib\tlink_rss_mib\th2_p50_overhead\th2_throughput_overhead\th2_rss_mib\tmachine";

    /// <summary>Appends the line, writing the header first to a new file.</summary>
    public static void Append(string path, DateTimeOffset date, string commit, string baseCommit, IReadOnlyList<GateSample> current, string machine)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var fresh = !File.Exists(path) || new FileInfo(path).Length == 0;
        File.AppendAllText(path, (fresh ? Header + "\n" : string.Empty) + Line(date, commit, baseCommit, current, machine) + "\n");
    }

    public static string Line(DateTimeOffset date, string commit, string baseCommit, IReadOnlyList<GateSample> current, string machine)
    {
        string Overhead(string arm, GateMetricKind kind)
            => new GateMetric(arm, kind).Ratios(current) is { Length: > 0 } ratios
                ? (GateComparison.LowerQuartile(ratios) - 1).ToString(kind == GateMetricKind.Rss ? "0.0" : "0.000", CultureInfo.InvariantCulture)
                : "n/a";

        return string.Join('\t',
            date.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm'Z'", CultureInfo.InvariantCulture),
            commit,
            baseCommit,
            Overhead("forwarder", GateMetricKind.P50),
            Overhead("forwarder-l7", GateMetricKind.P50),
            Overhead("forwarder-l7", GateMetricKind.Throughput),
            Overhead("forwarder", GateMetricKind.OpenP99),
            Overhead("forwarder-l7", GateMetricKind.OpenP99),
            Overhead("forwarder-link", GateMetricKind.P50),
            Overhead("forwarder-link", GateMetricKind.Throughput),
            Overhead("forwarder", GateMetricKind.Rss),
            Overhead("forwarder-l7", GateMetricKind.Rss),
            Overhead("forwarder-link", GateMetricKind.Rss),
            Overhead("forwarder-h2", GateMetricKind.P50),
            Overhead("forwarder-h2", GateMetricKind.Throughput),
            Overhead("forwarder-h2", GateMetricKind.Rss),
            machine.Replace('\t', ' '));
    }
}
