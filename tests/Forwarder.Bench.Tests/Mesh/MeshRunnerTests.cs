using Forwarder.Bench.Compare;
using Forwarder.Bench.Mesh;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Mesh;

/// <summary>A small real mesh: 3 instances on 2 nodes, every arm's proxies started, loaded over HTTP and TCP, sampled and reported.</summary>
[Collection(TimingCollection.Name)]
public sealed class MeshRunnerTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _reports = Directory.CreateTempSubdirectory("bench-mesh-");

    public void Dispose() => _reports.Delete(recursive: true);

    [Fact]
    public async Task EveryArmCarriesBothProtocolsAndTheReportComparesWithThePublishedFigures()
    {
        var options = new MeshOptions(
            [CompareProtocol.Http, CompareProtocol.Tcp],
            Instances: 3,
            Nodes: 2,
            Arms: ["no-mesh", "node-forwarder", "sidecar-forwarder", "sidecar-haproxy"],
            Rates: [200, null],
            Reps: 1,
            Duration: TimeSpan.FromMilliseconds(500),
            Warmup: TimeSpan.FromMilliseconds(200),
            Connections: 6,
            OutputDirectory: Path.Combine(_reports.FullName, "mesh"),
            ForwarderPath: ForwarderBuild.Debug());
        var log = new StringWriter();

        var result = await MeshRunner.RunAsync(options, log, CancellationToken.None);
        output.WriteLine(log.ToString());
        MeshReportWriter.Write(result, options.OutputDirectory);

        // Node mode runs a proxy per node; sidecars one per instance plus one per client node.
        Assert.Equal([0, 2, 5, 5], result.Footprints.Where(f => f.Protocol == CompareProtocol.Http).Select(f => f.Proxies));
        Assert.All(result.Footprints.Where(f => f.Proxies > 0), f => Assert.True(f.IdleRssBytes > f.Proxies * 1_000_000L, f.ToString()));
        Assert.Equal(2 * 4 * 2, result.Runs.Count);
        Assert.All(result.Runs, run =>
        {
            Assert.True(run.Stats.Ok > 50, $"{run.Protocol} {run.Arm} {run.Rate}: {run.Stats.Ok} ok");
            Assert.Equal(0, run.Stats.Failed);
            Assert.Equal(run.Arm == "no-mesh", run.CpuSeconds is null);
        });

        // Two user-space hops cost more than none at the same rate.
        var direct = result.Of(CompareProtocol.Http, "no-mesh", 200).Single().Stats.Latency.GetValueAtPercentile(50);
        var sidecars = result.Of(CompareProtocol.Http, "sidecar-forwarder", 200).Single().Stats.Latency.GetValueAtPercentile(50);
        Assert.True(sidecars > direct, $"sidecars p50 {sidecars} us, no mesh {direct} us");

        var report = File.ReadAllText(Path.Combine(options.OutputDirectory, "report.md"));
        Assert.Contains("## HTTP/1.1", report, StringComparison.Ordinal);
        Assert.Contains("## TCP request/response", report, StringComparison.Ordinal);
        Assert.Contains("| sidecar-haproxy | sidecar mode with HAProxy standing in for Envoy, two hops | 5 |", report, StringComparison.Ordinal);
        Assert.Contains("/hop)", report, StringComparison.Ordinal);
        Assert.Contains("| L4 forwarding: node mode over sidecars (TCP, max throughput) | +50% (Kmesh) |", report, StringComparison.Ordinal);
        Assert.Contains("| latency one sidecar hop adds (100 req/s) | 2-3 ms |", report, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, 5, 5)]
    [InlineData(1000.0, 5, 5)]
    [InlineData(20.0, 5, 15)]
    [InlineData(100.0, 2, 3)]
    public void LowRatesRunLongEnoughForThreeHundredRequests(double? rate, double seconds, double expected)
        => Assert.Equal(TimeSpan.FromSeconds(expected), MeshRunner.DurationAt(rate, TimeSpan.FromSeconds(seconds)));
}
