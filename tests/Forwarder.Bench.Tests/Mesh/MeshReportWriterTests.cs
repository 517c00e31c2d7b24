using Forwarder.Bench.Compare;
using Forwarder.Bench.Mesh;
using Forwarder.Bench.Tests.Infrastructure;

namespace Forwarder.Bench.Tests.Mesh;

public sealed class MeshReportWriterTests : IDisposable
{
    private readonly DirectoryInfo _reports = Directory.CreateTempSubdirectory("bench-mesh-");

    public void Dispose() => _reports.Delete(recursive: true);

    [Fact]
    public void Write_ArmLeftRequestsUnfinished_ListsTheRun()
    {
        var options = new MeshOptions([CompareProtocol.Http], 3, 2, ["no-mesh", "node-forwarder"], [100], 1, TimeSpan.FromSeconds(1), TimeSpan.Zero, 4, Path.Combine(_reports.FullName, "mesh"), null);
        MeshRun[] runs =
        [
            new(CompareProtocol.Http, "no-mesh", 100, 1, RunStats.OpenLoop(ok: 100, unfinished: 0), null, null, null),
            new(CompareProtocol.Http, "node-forwarder", 100, 1, RunStats.OpenLoop(ok: 60, unfinished: 40), 0.1, 1 << 20, 1 << 20),
        ];
        var result = new MeshResult(options, runs, [], [], new Dictionary<string, string>(), "test machine", DateTimeOffset.UnixEpoch);

        MeshReportWriter.Write(result, options.OutputDirectory);

        var report = File.ReadAllText(Path.Combine(options.OutputDirectory, "report.md"));
        Assert.Contains("- http node-forwarder at 100 req/s, repetition 1: 40 of 100 failed (40 timeouts, 40 unfinished), 60.0% of the requested rate", report, StringComparison.Ordinal);
        Assert.Single(result.Unclean);
    }
}
