using System.Globalization;
using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// One line of a scenario's table, the same in every report format: the whole invocation
/// ("(all)") or one step. The timeout column of a step counts its unfinished runs.
/// </summary>
internal sealed record ReportRow(string Name, long Ok, long Failed, long TimedOut, double RequestsPerSecond, HistogramBase Latency, long Bytes, IReadOnlyDictionary<int, long> StatusCodes)
{
    public const string AllName = "(all)";

    public static readonly double[] Percentiles = [50, 75, 95, 99, 99.9];

    public static IEnumerable<ReportRow> Of(ScenarioStats stats)
    {
        yield return new ReportRow(AllName, stats.Ok, stats.Failed, stats.TimedOut, stats.RequestsPerSecond, stats.Latency, stats.Bytes, stats.StatusCodes);
        foreach (var step in stats.Steps.Values.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            var rps = stats.Duration > TimeSpan.Zero ? (step.Count - step.Unfinished) / stats.Duration.TotalSeconds : 0;
            yield return new ReportRow(step.Name, step.Ok, step.Failed, step.Unfinished, rps, step.Latency, step.Bytes, step.StatusCodes);
        }
    }

    public string Min => Empty ? "-" : Milliseconds(Latency.GetMinValue());

    public string Mean => Empty ? "-" : string.Create(CultureInfo.InvariantCulture, $"{Latency.Mean() / 1000:0.000}");

    public string Max => Empty ? "-" : Milliseconds(Latency.Max());

    /// <summary>Status codes as <c>200=97 503=3</c>, by code: no commas, so a CSV field needs no quotes.</summary>
    public string StatusCodeList => string.Join(' ', StatusCodes.OrderBy(c => c.Key).Select(c => string.Create(CultureInfo.InvariantCulture, $"{c.Key}={c.Value}")));

    private bool Empty => Latency.TotalCount == 0;

    public string At(double percentile) => Empty ? "-" : Milliseconds(Latency.ValueAt(percentile));

    public string Rps => string.Create(CultureInfo.InvariantCulture, $"{RequestsPerSecond:0.0}");

    private static string Milliseconds(long microseconds) => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1000.0:0.000}");
}
