using Forwarder.Bench.Compare;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Compare;

/// <summary>A short real comparison: the built-in backend, the forwarder and HAProxy/nginx (installed by .ci/run) started, loaded, sampled and stopped.</summary>
[Collection(TimingCollection.Name)]
public sealed class CompareRunnerTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _reports = Directory.CreateTempSubdirectory("bench-reports-");

    public void Dispose() => _reports.Delete(recursive: true);

    [Fact]
    public async Task Tcp_EveryArmCarriesTheLoadAndTheReportIsWritten()
    {
        var options = new CompareOptions(
            "tcp-smoke",
            CompareProtocol.Tcp,
            ["direct", "forwarder", "haproxy-tcp", "nginx-stream", "haproxy-http"],
            [null, 200],
            Reps: 2,
            Duration: TimeSpan.FromSeconds(1),
            Warmup: TimeSpan.FromMilliseconds(300),
            Connections: 4,
            Size: 100,
            ProxyThreads: 1,
            Backend: "builtin",
            OutputDirectory: Path.Combine(_reports.FullName, "tcp-smoke"),
            ForwarderPath: ForwarderBuild.Debug());
        var log = new StringWriter();

        var result = await CompareRunner.RunAsync(options, log, CancellationToken.None);
        output.WriteLine(log.ToString());
        CompareReportWriter.Write(result, options.OutputDirectory);

        Assert.Equal(["direct", "forwarder", "haproxy-tcp", "nginx-stream"], result.Arms);
        Assert.Contains(result.Skipped, s => s.StartsWith("haproxy-http: cannot carry TCP", StringComparison.Ordinal));

        // Interleaved: rep 1 runs every rate on every arm before rep 2 starts.
        Assert.Equal(16, result.Runs.Count);
        Assert.Equal([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2], result.Runs.Select(r => r.Rep));
        Assert.All(result.Runs, run =>
        {
            Assert.Equal(0, run.Stats.Failed);
            Assert.True(run.Stats.Ok > 0, $"{run.Arm} carried nothing");
            Assert.Equal(run.Stats.Ok * 100, run.Stats.Bytes);
        });
        // Loose on purpose: this checks the comparison's plumbing on a CI box that may be busy;
        // how well the generator holds a rate is LoadCommandTests' job.
        Assert.All(result.Runs.Where(r => r.Rate == 200), run => Assert.InRange(run.Stats.RequestsPerSecond, 120, 200));
        Assert.All(result.Runs.Where(r => r.Arm != "direct"), run =>
        {
            // CPU is counted in 10 ms ticks: at 200 req/s an efficient proxy may not use one.
            Assert.True(run.Rate is null ? run.CpuSeconds > 0 : run.CpuSeconds >= 0, $"{run.Arm} CPU {run.CpuSeconds}");
            Assert.True(run.PeakRssBytes > 1 << 20, $"{run.Arm} RSS {run.PeakRssBytes}");
        });
        Assert.All(result.Runs.Where(r => r.Arm == "direct"), run => Assert.Null(run.CpuSeconds));

        var report = await File.ReadAllTextAsync(Path.Combine(options.OutputDirectory, "report.md"));
        Assert.Contains("| forwarder |", report, StringComparison.Ordinal);
        Assert.Contains("## Open loop at 200 req/s", report, StringComparison.Ordinal);
        Assert.Contains("Forwarder vs the best peer here", report, StringComparison.Ordinal);
        Assert.Contains("skipped haproxy-http: cannot carry TCP", report, StringComparison.Ordinal);
        foreach (var file in new[] { "results.json", "latency-max.svg", "throughput-200.svg", "cpu-max.svg", "memory-max.svg", "forwarder-max.hgrm", "nginx-stream-200.hgrm" })
        {
            Assert.True(File.Exists(Path.Combine(options.OutputDirectory, file)), $"{file} missing");
        }

        Assert.Contains("[tcp-smoke](tcp-smoke/report.md)", await File.ReadAllTextAsync(Path.Combine(_reports.FullName, "index.md")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http_YarpIsAPeerArm_CarriesTheLoad_AndTcpSkipsIt()
    {
        var options = new CompareOptions(
            "http-yarp",
            CompareProtocol.Http,
            ["direct", "forwarder-l7", "yarp"],
            [null],
            Reps: 1,
            Duration: TimeSpan.FromSeconds(1),
            // YARP's first requests are JIT-compiled: on a loaded runner they took longer than a
            // 500 ms warm-up and a 1 s run together, and a request started in the warm-up is not counted.
            Warmup: TimeSpan.FromSeconds(3),
            Connections: 4,
            Size: 100,
            ProxyThreads: 1,
            Backend: "builtin",
            OutputDirectory: Path.Combine(_reports.FullName, "http-yarp"),
            ForwarderPath: ForwarderBuild.Debug(),
            YarpPath: ForwarderBuild.YarpDebug());
        var log = new StringWriter();

        var result = await CompareRunner.RunAsync(options, log, CancellationToken.None);
        output.WriteLine(log.ToString());
        CompareReportWriter.Write(result, options.OutputDirectory);

        var yarp = Assert.Single(result.Runs, r => r.Arm == "yarp");
        Assert.Equal(0, yarp.Stats.Failed);
        Assert.True(yarp.Stats.Ok > 0, "yarp carried nothing");
        Assert.Equal(yarp.Stats.Ok, yarp.Stats.StatusCodes.GetValueOrDefault(200));
        Assert.True(yarp.PeakRssBytes > 1 << 20, $"yarp RSS {yarp.PeakRssBytes}");
        Assert.Contains("| yarp |", await File.ReadAllTextAsync(Path.Combine(options.OutputDirectory, "report.md")), StringComparison.Ordinal);

        Assert.False(ArmCatalog.Supports("yarp", CompareProtocol.Tcp));
        Assert.Contains("yarp", ArmCatalog.HttpDefaults);
    }
}
