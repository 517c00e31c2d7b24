using System.Text.Json;
using Forwarder.Bench.Load;

namespace Forwarder.Bench.Compare;

/// <summary>Every run of a comparison as JSON, for tools and for the regression gate.</summary>
internal static class CompareJsonWriter
{
    public static void Write(Stream stream, CompareResult result)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        var options = result.Options;
        json.WriteStartObject();
        json.WriteString("name", options.Name);
        json.WriteString("startedAt", result.StartedAt);
        json.WriteString("machine", result.Machine);
        json.WriteString("protocol", options.Protocol.ToString().ToLowerInvariant());
        json.WriteString("backend", options.Backend);
        json.WriteNumber("connections", options.Connections);
        json.WriteNumber("reps", options.Reps);
        json.WriteNumber("durationSeconds", options.Duration.TotalSeconds);
        json.WriteNumber("warmupSeconds", options.Warmup.TotalSeconds);
        json.WriteNumber("proxyThreads", options.ProxyThreads);
        json.WriteStartObject("versions");
        foreach (var (tool, version) in result.Versions)
        {
            json.WriteString(tool, version);
        }

        json.WriteEndObject();
        json.WriteStartArray("skipped");
        foreach (var reason in result.Skipped)
        {
            json.WriteStringValue(reason);
        }

        json.WriteEndArray();
        json.WriteStartArray("runs");
        foreach (var run in result.Runs)
        {
            json.WriteStartObject();
            json.WriteString("arm", run.Arm);
            if (run.Rate is { } rate)
            {
                json.WriteNumber("rate", rate);
            }
            else
            {
                json.WriteNull("rate");
            }

            json.WriteNumber("rep", run.Rep);
            json.WriteNumber("achievedRate", Math.Round(run.Stats.RequestsPerSecond, 3));
            json.WriteNumber("requests", run.Stats.Count);
            json.WriteNumber("errors", run.Stats.Failed);
            json.WriteNumber("unfinished", run.Stats.Unfinished);
            json.WriteBoolean("rateAchieved", run.Stats.RateAchieved);
            json.WriteBoolean("clean", run.Stats.Clean);
            LoadJsonWriter.WriteLatency(json, "latencyUs", run.Stats.Latency);
            WriteOptional(json, "proxyCpuSeconds", run.CpuSeconds);
            WriteOptional(json, "proxyRssPeakBytes", run.PeakRssBytes);
            WriteOptional(json, "proxyRssMeanBytes", run.MeanRssBytes);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter json, string name, double? value)
    {
        if (value is { } number)
        {
            json.WriteNumber(name, Math.Round(number, 6));
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
