using System.Globalization;
using System.Net;
using System.Text;
using Forwarder.Bench.Reports;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// Writes the results of a run as report files in a folder: <c>report.md</c>, <c>report.csv</c>
/// (one row per scenario and step, for a spreadsheet) and <c>report.html</c> (the tables with the
/// latency-by-percentile and throughput-over-time charts embedded as SVG).
/// </summary>
public static class ScenarioReportFiles
{
    /// <summary>The CSV's header; each row is one scenario's "(all)" line or one of its steps.</summary>
    public const string CsvHeader = "scenario,step,ok,failed,timeouts,rps,min_ms,mean_ms,max_ms,p50_ms,p75_ms,p95_ms,p99_ms,p99_9_ms,bytes,status_codes";

    /// <summary>Writes the three reports of <paramref name="results"/> into <paramref name="folder"/> (created if missing) and returns their paths.</summary>
    public static async Task<IReadOnlyList<string>> WriteAsync(string folder, IReadOnlyList<ScenarioStats> results, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        ArgumentNullException.ThrowIfNull(results);
        Directory.CreateDirectory(folder);
        (string Name, string Text)[] files = [("report.md", Markdown(results)), ("report.csv", Csv(results)), ("report.html", Html(results))];
        List<string> paths = [];
        foreach (var (name, text) in files)
        {
            var path = Path.Combine(folder, name);
            await File.WriteAllTextAsync(path, text, cancellationToken).ConfigureAwait(false);
            paths.Add(path);
        }

        return paths;
    }

    internal static string Markdown(IReadOnlyList<ScenarioStats> results)
    {
        var text = new StringBuilder("# Scenario report\n");
        foreach (var stats in results)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n## {stats.Name}\n\n{Summary(stats)}\n\n");
            text.Append("| step | ok | failed | timeouts | rps | min ms | mean ms | max ms | p50 ms | p75 ms | p95 ms | p99 ms | p99.9 ms | bytes | status codes |\n");
            text.Append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
            foreach (var row in ReportRow.Of(stats))
            {
                text.Append(CultureInfo.InvariantCulture, $"| {row.Name.Replace("|", "\\|", StringComparison.Ordinal)} | {row.Ok} | {row.Failed} | {row.TimedOut} | {row.Rps} | {row.Min} | {row.Mean} | {row.Max} | {string.Join(" | ", ReportRow.Percentiles.Select(row.At))} | {row.Bytes} | {row.StatusCodeList} |\n");
            }

            var notes = ScenarioReportWriter.Notes(stats).ToArray();
            if (notes.Length > 0)
            {
                text.Append('\n');
                foreach (var note in notes)
                {
                    text.Append(CultureInfo.InvariantCulture, $"- {note}\n");
                }
            }
        }

        return text.ToString();
    }

    internal static string Csv(IReadOnlyList<ScenarioStats> results)
    {
        var text = new StringBuilder(CsvHeader).Append('\n');
        foreach (var stats in results)
        {
            foreach (var row in ReportRow.Of(stats))
            {
                string[] fields = [CsvField(stats.Name), CsvField(row.Name), .. new[] { row.Ok, row.Failed, row.TimedOut }.Select(n => n.ToString(CultureInfo.InvariantCulture)),
                    row.Rps, row.Min, row.Mean, row.Max, .. ReportRow.Percentiles.Select(row.At), row.Bytes.ToString(CultureInfo.InvariantCulture), row.StatusCodeList];
                text.AppendJoin(',', fields).Append('\n');
            }
        }

        return text.ToString();
    }

    internal static string Html(IReadOnlyList<ScenarioStats> results)
    {
        var text = new StringBuilder("""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Scenario report</title>
            <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child,td:last-child{text-align:left}.failed{color:#b00;font-weight:bold}</style>
            </head><body><h1>Scenario report</h1>

            """);
        foreach (var stats in results)
        {
            text.Append(CultureInfo.InvariantCulture, $"<h2>{Encode(stats.Name)}</h2>\n<p>{Encode(Summary(stats))}</p>\n<table>\n<tr><th>step</th><th>ok</th><th>failed</th><th>timeouts</th><th>rps</th><th>min ms</th><th>mean ms</th><th>max ms</th>");
            text.AppendJoin(string.Empty, ReportRow.Percentiles.Select(p => string.Create(CultureInfo.InvariantCulture, $"<th>p{p} ms</th>"))).Append("<th>bytes</th><th>status codes</th></tr>\n");
            foreach (var row in ReportRow.Of(stats))
            {
                string[] cells = [Encode(row.Name), .. new[] { row.Ok, row.Failed, row.TimedOut }.Select(n => n.ToString(CultureInfo.InvariantCulture)), row.Rps, row.Min, row.Mean, row.Max, .. ReportRow.Percentiles.Select(row.At), row.Bytes.ToString(CultureInfo.InvariantCulture), row.StatusCodeList];
                text.Append("<tr>").AppendJoin(string.Empty, cells.Select(c => $"<td>{c}</td>")).Append("</tr>\n");
            }

            text.Append("</table>\n<ul>\n");
            foreach (var note in ScenarioReportWriter.Notes(stats))
            {
                var failed = note.StartsWith("ABORTED", StringComparison.Ordinal) || note.Contains("FAILED", StringComparison.Ordinal) || note.Contains("NOT", StringComparison.Ordinal);
                text.Append(CultureInfo.InvariantCulture, $"<li{(failed ? " class=\"failed\"" : string.Empty)}>{Encode(note)}</li>\n");
            }

            text.Append("</ul>\n");
            var latency = ReportRow.Of(stats).Select(r => new LatencySeries(r.Name, r.Latency.TotalCount == 0 ? [] : [.. r.Latency.Percentiles(5).Select(v => (v.PercentileLevelIteratedTo, v.ValueIteratedTo / 1000.0))])).ToArray();
            text.Append(Charts.LatencyByPercentile($"Latency by percentile, {stats.Name}", latency)).Append('\n');
            var throughput = new TimeSeries("completed", [.. stats.CompletedPerSecond.Select((count, second) => (second + 1.0, (double)count))]);
            text.Append(Charts.OverTime($"Throughput over time, {stats.Name}", "invocations/s", [throughput])).Append('\n');
        }

        return text.Append("</body></html>\n").ToString();
    }

    private static string Summary(ScenarioStats stats) => string.Create(
        CultureInfo.InvariantCulture,
        $"{(stats.Passed ? "PASSED" : "FAILED")}: {stats.Count} invocations in {stats.Duration.TotalSeconds:0.###} s, {(stats.RequestedRate is { } rate ? $"open loop at {rate:0.##}/s requested" : "closed loop")}, error rate {stats.ErrorRate:0.###%}{(stats.Abort is { } abort ? $", aborted at {abort.At.TotalSeconds:0.0##} s" : string.Empty)}");

    private static string CsvField(string value) => value.AsSpan().IndexOfAny(",\"\n") < 0 ? value : $"\"{value.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
