using System.Text.Json;

namespace Forwarder.Bench.Gate;

/// <summary>The JSON shapes of settings and samples, of the calibration's record.</summary>
internal static class GateJson
{
    public static void WriteSettings(Utf8JsonWriter json, GateSettings settings)
    {
        json.WriteStartObject("settings");
        json.WriteNumber("connections", settings.Connections);
        json.WriteNumber("durationSeconds", settings.Duration.TotalSeconds);
        json.WriteNumber("slices", settings.Slices);
        json.WriteNumber("maxConnections", settings.MaxConnections);
        json.WriteNumber("maxDurationSeconds", settings.MaxDuration.TotalSeconds);
        json.WriteNumber("warmupSeconds", settings.Warmup.TotalSeconds);
        json.WriteNumber("warmupReps", settings.WarmupReps);
        json.WriteString("backend", settings.Backend);
        json.WriteNumber("openRate", settings.OpenRate);
        json.WriteNumber("openDurationSeconds", settings.OpenDuration.TotalSeconds);
        json.WriteStartArray("arms");
        foreach (var arm in settings.ProxyArms)
        {
            json.WriteStringValue(arm);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    public static void WriteSamples(Utf8JsonWriter json, string name, IEnumerable<GateSample> samples)
    {
        json.WriteStartArray(name);
        foreach (var sample in samples)
        {
            json.WriteStartObject();
            json.WriteString("arm", sample.Arm);
            json.WriteNumber("rep", sample.Rep);
            json.WriteNumber("p50Us", Math.Round(sample.P50Us, 3));
            json.WriteNumber("p99Us", Math.Round(sample.P99Us, 3));
            json.WriteNumber("maxRps", Math.Round(sample.MaxRps, 3));
            json.WriteNumber("openP99Us", Math.Round(sample.OpenP99Us, 3));
            if (sample.RssMiB is { } rss)
            {
                json.WriteNumber("rssMiB", Math.Round(rss, 3));
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    public static GateSettings ReadSettings(JsonElement parent, string path)
    {
        var settings = Field(parent, "settings", path);
        return new GateSettings(
            Field(settings, "connections", path).GetInt32(),
            TimeSpan.FromSeconds(Field(settings, "durationSeconds", path).GetDouble()),
            Field(settings, "slices", path).GetInt32(),
            Field(settings, "maxConnections", path).GetInt32(),
            TimeSpan.FromSeconds(Field(settings, "maxDurationSeconds", path).GetDouble()),
            TimeSpan.FromSeconds(Field(settings, "warmupSeconds", path).GetDouble()),
            Field(settings, "warmupReps", path).GetInt32(),
            Field(settings, "backend", path).GetString()!,
            Field(settings, "openRate", path).GetDouble(),
            TimeSpan.FromSeconds(Field(settings, "openDurationSeconds", path).GetDouble()),
            settings.TryGetProperty("arms", out var arms) ? [.. arms.EnumerateArray().Select(a => a.GetString()!)] : GateCalibration.Arms);
    }

    public static GateSample[] ReadSamples(JsonElement parent, string name, string path)
        => [.. Field(parent, name, path).EnumerateArray().Select((sample, i) => new GateSample(
            Field(sample, "arm", path, name, i).GetString()!,
            Field(sample, "rep", path, name, i).GetInt32(),
            Field(sample, "p50Us", path, name, i).GetDouble(),
            Field(sample, "p99Us", path, name, i).GetDouble(),
            Field(sample, "maxRps", path, name, i).GetDouble(),
            Field(sample, "openP99Us", path, name, i).GetDouble(),
            sample.TryGetProperty("rssMiB", out var rss) ? rss.GetDouble() : null))];

    /// <exception cref="GateFileException">The field is missing; the message names the file and the field.</exception>
    public static JsonElement Field(JsonElement parent, string name, string path, string? array = null, int index = 0)
        => parent.TryGetProperty(name, out var value)
            ? value
            : throw new GateFileException(array is null ? $"{path}: no '{name}'." : $"{path}: {array}[{index}] has no '{name}'.");
}

/// <summary>A gate file (a calibration's samples) that cannot be read, with the file and field at fault.</summary>
internal sealed class GateFileException(string message) : Exception(message);
