using Forwarder.Bench.Compare;
using Forwarder.Bench.Tests.Infrastructure;

namespace Forwarder.Bench.Tests.Compare;

/// <summary>A report built from runs that failed or left requests unfinished says so instead of presenting their figures as a working arm's.</summary>
public sealed class CompareReportWriterTests : IDisposable
{
    private readonly DirectoryInfo _reports = Directory.CreateTempSubdirectory("bench-reports-");

    public void Dispose() => _reports.Delete(recursive: true);

    [Fact]
    public void Write_OurArmLeftRequestsUnfinished_ListsTheRunAndTheVerdictIsNotFair()
    {
        var options = new CompareOptions("unclean", CompareProtocol.Http, ["direct", "forwarder", "haproxy-http"], [100], 1, TimeSpan.FromSeconds(1), TimeSpan.Zero, 4, 64, 1, "builtin", Path.Combine(_reports.FullName, "unclean"), null);
        ArmRun[] runs =
        [
            new("direct", 100, 1, RunStats.OpenLoop(ok: 100, unfinished: 0), null, null, null),
            new("forwarder", 100, 1, RunStats.OpenLoop(ok: 30, unfinished: 70), 0.1, 1 << 20, 1 << 20),
            new("haproxy-http", 100, 1, RunStats.OpenLoop(ok: 100, unfinished: 0), 0.1, 1 << 20, 1 << 20),
        ];
        var result = new CompareResult(options, ["direct", "forwarder", "haproxy-http"], runs, [], new Dictionary<string, string>(), "test machine", DateTimeOffset.UnixEpoch);

        CompareReportWriter.Write(result, options.OutputDirectory);

        var report = File.ReadAllText(Path.Combine(options.OutputDirectory, "report.md"));
        Assert.Contains("**1 run(s) did not measure cleanly**", report, StringComparison.Ordinal);
        Assert.Contains("- forwarder at 100 req/s, repetition 1: 70 of 100 failed (70 timeouts, 70 unfinished), 30.0% of the requested rate", report, StringComparison.Ordinal);
        Assert.Contains("Not a fair comparison: forwarder had runs that did not measure cleanly", report, StringComparison.Ordinal);
        var json = File.ReadAllText(Path.Combine(options.OutputDirectory, "results.json"));
        Assert.Contains("\"unfinished\": 70", json, StringComparison.Ordinal);
        Assert.Contains("\"clean\": false", json, StringComparison.Ordinal);
        Assert.Single(result.Unclean);
    }

    [Fact]
    public void Write_Runs_LinksEveryChartAndEachNamesItsArms()
    {
        var options = new CompareOptions("charts", CompareProtocol.Http, ["direct", "forwarder"], [100], 1, TimeSpan.FromSeconds(1), TimeSpan.Zero, 4, 64, 1, "builtin", Path.Combine(_reports.FullName, "charts"), null);
        ResourceSample[] samples = [new(0.5, 0.1, 8 << 20), new(1.0, 0.2, 9 << 20)];
        ArmRun[] runs =
        [
            new("direct", 100, 1, RunStats.OpenLoop(ok: 100, unfinished: 0), null, null, null),
            new("forwarder", 100, 1, RunStats.OpenLoop(ok: 100, unfinished: 0), 0.2, 9 << 20, 8 << 20, samples),
        ];
        var result = new CompareResult(options, ["direct", "forwarder"], runs, [], new Dictionary<string, string>(), "test machine", DateTimeOffset.UnixEpoch);

        CompareReportWriter.Write(result, options.OutputDirectory);

        var report = File.ReadAllText(Path.Combine(options.OutputDirectory, "report.md"));
        foreach (var chart in new[] { "latency", "throughput", "cpu", "memory", "throughput-time", "cpu-time", "memory-time" })
        {
            Assert.Contains($"![{chart}-100]({chart}-100.svg)", report, StringComparison.Ordinal);
            var svg = System.Xml.Linq.XDocument.Load(Path.Combine(options.OutputDirectory, $"{chart}-100.svg"));
            var texts = svg.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value.Trim()).ToList();
            Assert.Contains(texts, t => t.StartsWith("forwarder", StringComparison.Ordinal));
        }
    }
}
