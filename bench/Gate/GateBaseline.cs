using System.Text.Json;

namespace Forwarder.Bench.Gate;

/// <summary>
/// A recorded run the gate compares against (perf-reports/baseline/gate.json): the settings it
/// was measured with and every repetition's raw figures, so the ratios are recomputed rather than
/// trusted and a changed metric definition applies to old baselines too.
/// </summary>
internal sealed record GateBaseline(GateSettings Settings, IReadOnlyList<GateSample> Samples, string Machine, DateTimeOffset RecordedAt, IReadOnlyDictionary<string, string> Versions)
{
    private const int FormatVersion = 1;

    public int Reps => Samples.Select(s => s.Rep).Distinct().Count();

    public void Write(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteNumber("format", FormatVersion);
        json.WriteString("recordedAt", RecordedAt);
        json.WriteString("machine", Machine);
        json.WriteStartObject("versions");
        foreach (var (tool, version) in Versions)
        {
            json.WriteString(tool, version);
        }

        json.WriteEndObject();
        GateJson.WriteSettings(json, Settings);
        GateJson.WriteSamples(json, "samples", Samples);
        json.WriteEndObject();
    }

    /// <exception cref="GateBaselineException">The file is missing, not JSON, or lacks a field; the message names the file and the field.</exception>
    public static GateBaseline Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new GateBaselineException($"{path}: no baseline here; record one with bench gate --update-baseline.");
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            var format = GateJson.Field(root, "format", path).GetInt32();
            if (format != FormatVersion)
            {
                throw new GateBaselineException($"{path}: format {format} is not the {FormatVersion} this bench reads; record the baseline again.");
            }

            return new GateBaseline(
                GateJson.ReadSettings(root, path),
                GateJson.ReadSamples(root, "samples", path),
                GateJson.Field(root, "machine", path).GetString()!,
                GateJson.Field(root, "recordedAt", path).GetDateTimeOffset(),
                GateJson.Field(root, "versions", path).EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? string.Empty, StringComparer.Ordinal));
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new GateBaselineException($"{path}: not a gate baseline: {ex.Message}");
        }
    }
}

/// <summary>A baseline that cannot be used, with the file and field at fault.</summary>
internal sealed class GateBaselineException(string message) : Exception(message);
