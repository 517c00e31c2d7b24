using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

public sealed class GateBaselineTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("gate-baseline-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void WriteThenRead_KeepsSettingsAndSamples()
    {
        var path = Path.Combine(_directory.FullName, "nested", "gate.json");
        var settings = GateSettings.Default("nginx") with { Connections = 2, WarmupReps = 4 };
        var written = new GateBaseline(settings, GateSamples.Make(3), "test machine", new DateTimeOffset(2026, 11, 22, 18, 0, 0, TimeSpan.Zero), new Dictionary<string, string> { [".NET"] = "10" });

        written.Write(path);
        var read = GateBaseline.Read(path);

        Assert.Equal(settings, read.Settings);
        Assert.Equal(3, read.Reps);
        Assert.Equal(written.Samples.Count, read.Samples.Count);
        Assert.Equal(written.Samples[4].P99Us, read.Samples[4].P99Us, 0.001);
        Assert.Equal(written.Samples[4].Arm, read.Samples[4].Arm);
        Assert.Equal("test machine", read.Machine);
        Assert.Equal(written.RecordedAt, read.RecordedAt);
        Assert.Equal("10", read.Versions[".NET"]);
    }

    [Fact]
    public void Missing_SaysHowToRecordOne()
    {
        var path = Path.Combine(_directory.FullName, "none.json");

        var error = Assert.Throws<GateBaselineException>(() => GateBaseline.Read(path));

        Assert.Equal($"{path}: no baseline here; record one with bench gate --update-baseline.", error.Message);
    }

    [Fact]
    public void MissingField_NamesTheFileAndTheField()
    {
        var path = Path.Combine(_directory.FullName, "gate.json");
        new GateBaseline(GateSettings.Default("builtin"), GateSamples.Make(2), "m", DateTimeOffset.UtcNow, new Dictionary<string, string>()).Write(path);
        var text = File.ReadAllText(path);
        var second = text.IndexOf("\"p99Us\"", text.IndexOf("\"p99Us\"", StringComparison.Ordinal) + 1, StringComparison.Ordinal);
        File.WriteAllText(path, text[..second] + "\"p98Us\"" + text[(second + "\"p99Us\"".Length)..]);

        var error = Assert.Throws<GateBaselineException>(() => GateBaseline.Read(path));

        Assert.Equal($"{path}: samples[1] has no 'p99Us'.", error.Message);
    }

    [Fact]
    public void NotJson_IsRejectedWithTheFileNamed()
    {
        var path = Path.Combine(_directory.FullName, "gate.json");
        File.WriteAllText(path, "{ \"format\": 1, ");

        var error = Assert.Throws<GateBaselineException>(() => GateBaseline.Read(path));

        Assert.StartsWith($"{path}: not a gate baseline:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OtherFormat_AsksForANewRecording()
    {
        var path = Path.Combine(_directory.FullName, "gate.json");
        File.WriteAllText(path, "{ \"format\": 9 }");

        var error = Assert.Throws<GateBaselineException>(() => GateBaseline.Read(path));

        Assert.Equal($"{path}: format 9 is not the 1 this bench reads; record the baseline again.", error.Message);
    }
}
