using System.Text.Json;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Scenarios;
using HdrHistogram;

namespace Forwarder.Bench.Load;

/// <summary>The machine-readable result of <c>bench load</c>: rates and whether the requested one was achieved, counts (unfinished ones too), errors and latency percentiles in microseconds.</summary>
internal static class LoadJsonWriter
{
    public static void Write(Stream stream, LoadOptions options, ScenarioStats stats)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("target", options.Target);
        json.WriteString("mode", options.OpenLoop ? "open" : "closed");
        json.WriteNumber("connections", options.Connections);
        json.WriteNumber("threads", options.Threads);
        json.WriteNumber("durationSeconds", stats.Duration.TotalSeconds);
        json.WriteNumber("warmupSeconds", options.Warmup.TotalSeconds);
        if (stats.RequestedRate is { } requested)
        {
            json.WriteNumber("requestedRate", Math.Round(requested, 3));
        }
        else
        {
            json.WriteNull("requestedRate");
        }

        json.WriteNumber("achievedRate", Math.Round(stats.RequestsPerSecond, 3));
        if (stats.AchievedShare is { } share)
        {
            json.WriteNumber("achievedShare", Math.Round(share, 4));
        }
        else
        {
            json.WriteNull("achievedShare");
        }

        json.WriteBoolean("rateAchieved", stats.RateAchieved);
        json.WriteBoolean("passed", stats.Passed);
        json.WriteNumber("requests", stats.Count);
        json.WriteNumber("completed", stats.Completed);
        json.WriteNumber("ok", stats.Ok);
        json.WriteNumber("errors", stats.Failed);
        json.WriteNumber("timeouts", stats.TimedOut);
        json.WriteNumber("unfinished", stats.Unfinished);
        json.WriteNumber("graceSeconds", stats.GracePeriod.TotalSeconds);
        json.WriteNumber("bytes", stats.Bytes);
        json.WriteStartObject("errorsByReason");
        foreach (var (message, count) in stats.Failures.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            json.WriteNumber(message, count);
        }

        json.WriteEndObject();
        json.WriteStartObject("statusCodes");
        foreach (var (status, count) in stats.StatusCodes.OrderBy(s => s.Key))
        {
            json.WriteNumber(status.ToString(System.Globalization.CultureInfo.InvariantCulture), count);
        }

        json.WriteEndObject();
        WriteLatency(json, "latencyUs", stats.Latency);
        WriteLatency(json, "uncorrectedLatencyUs", stats.UncorrectedLatency);
        json.WriteEndObject();
    }

    public static void WriteLatency(Utf8JsonWriter json, string name, HistogramBase histogram)
    {
        var empty = histogram.TotalCount == 0;
        json.WriteStartObject(name);
        json.WriteNumber("min", empty ? 0 : histogram.GetMinValue());
        json.WriteNumber("mean", empty ? 0 : Math.Round(histogram.GetMean(), 3));
        json.WriteNumber("stddev", empty ? 0 : Math.Round(histogram.GetStdDeviation(), 3));
        foreach (var (label, percentile) in new[] { ("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99) })
        {
            json.WriteNumber(label, empty ? 0 : histogram.ValueAt(percentile));
        }

        json.WriteNumber("max", empty ? 0 : histogram.Max());
        json.WriteEndObject();
    }
}
