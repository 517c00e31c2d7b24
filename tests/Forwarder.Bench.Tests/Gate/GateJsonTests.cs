using System.Text.Json;
using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

public sealed class GateJsonTests
{
    [Fact]
    public void Samples_RoundTripWithTheirMemory_AndOlderFilesReadWithout()
    {
        List<GateSample> samples = [new("direct", 1, 20, 50, 60_000, 200), new("forwarder-link", 1, 90, 300, 12_000, 900, 81.25)];
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            GateJson.WriteSamples(json, "base", samples);
            json.WriteEndObject();
        }

        using var written = JsonDocument.Parse(buffer.ToArray());
        using var older = JsonDocument.Parse("""{"base":[{"arm":"forwarder","rep":1,"p50Us":30,"p99Us":100,"maxRps":30000,"openP99Us":600}]}""");

        Assert.Equal(samples, GateJson.ReadSamples(written.RootElement, "base", "samples.json"));
        Assert.Null(Assert.Single(GateJson.ReadSamples(older.RootElement, "base", "old.json")).RssMiB);
    }
}
