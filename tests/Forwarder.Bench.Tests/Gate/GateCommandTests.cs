using Forwarder.Bench.Compare;
using Forwarder.Bench.Gate;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Gate;

/// <summary>
/// The gate end to end on real processes (built-in backend, the forwarder's debug build), against
/// baselines far enough from any real run that the verdict cannot depend on noise: one claiming
/// the forwarder adds nothing, one claiming it is ten times slower than no proxy.
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class GateCommandTests(ITestOutputHelper output) : IDisposable
{
    // Slices of 200 ms: on a loaded 2-core runner a closed-loop worker can start 100 ms late,
    // and an arm that ran no request in a repetition (rightly) stops the gate.
    private static readonly GateSettings QuickSettings = new(1, TimeSpan.FromMilliseconds(600), 3, 8, TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(100), 1, "builtin");

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("gate-command-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task RealOverheadAgainstABaselineOfNone_IsARegression()
    {
        var (exitCode, log, summary) = await RunAgainstAsync(GateSamples.Make(12, p50: 1.0, p99: 1.0, throughput: 1.0, spread: 0.001));

        Assert.Equal(GateCommand.ExitRegression, exitCode);
        Assert.Contains("gate: REGRESSION", log, StringComparison.Ordinal);
        Assert.StartsWith("## Latency gate: REGRESSION", summary, StringComparison.Ordinal);
        Assert.Matches(@"\| forwarder p50 latency \| [+-]0\.[01]% \|", summary);
        // p50 overheads are far above none in any run. Throughput overheads are too (+45% and +83% in a
        // CI run), but six short repetitions on a loaded machine spread them so widely that one can
        // miss p < 0.01 (p = 0.06 seen), so they are held to a measured overhead well above none. A
        // p99 of this short a run on a loaded machine can come out anywhere, so it is not asserted.
        var rows = summary.Split('\n');
        Assert.All(GateMetric.All.Where(m => m.Kind == GateMetricKind.P50), metric => Assert.Contains(rows, row => row.StartsWith($"| {metric.Name} |", StringComparison.Ordinal) && row.Contains("**worse**", StringComparison.Ordinal)));
        Assert.All(GateMetric.All.Where(m => m.Kind == GateMetricKind.Throughput), metric => Assert.True(CurrentOverhead(rows, metric.Name) > 10, $"{metric.Name}: {CurrentOverhead(rows, metric.Name)}%"));
    }

    [Fact]
    public async Task RealOverheadAgainstATenfoldBaseline_Passes()
    {
        var (exitCode, log, summary) = await RunAgainstAsync(GateSamples.Make(12, p50: 10, p99: 10, throughput: 10, spread: 0.001));

        Assert.Equal(GateCommand.ExitPass, exitCode);
        Assert.Contains("gate: pass", log, StringComparison.Ordinal);
        Assert.StartsWith("## Latency gate: pass", summary, StringComparison.Ordinal);
        Assert.DoesNotContain("**worse**", summary, StringComparison.Ordinal);
        Assert.Contains("| direct |", summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoBaseline_ExitsWithSetupErrorBeforeMeasuring()
    {
        var log = new StringWriter();
        var options = new GateOptions(Path.Combine(_directory.FullName, "missing.json"), false, 4, QuickSettings, GatePolicy.Default, null, ForwarderBuild.Debug());

        var exitCode = await GateCommand.RunAsync(options, log, CancellationToken.None);

        Assert.Equal(GateCommand.ExitSetup, exitCode);
        Assert.Contains("no baseline here", log.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("rep 1", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TooFewRepetitions_ExitWithSetupError()
    {
        var baseline = Path.Combine(_directory.FullName, "gate.json");
        new GateBaseline(QuickSettings, GateSamples.Make(3), "m", DateTimeOffset.UtcNow, new Dictionary<string, string>()).Write(baseline);
        var log = new StringWriter();

        var exitCode = await GateCommand.RunAsync(new GateOptions(baseline, false, 2, QuickSettings, GatePolicy.Default, null, ForwarderBuild.Debug()), log, CancellationToken.None);

        Assert.Equal(GateCommand.ExitSetup, exitCode);
        Assert.Contains("too few for a quartile; both need at least 6 (--reps)", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task BaselineMissingAnArmInMostRepetitions_ExitsWithSetupError()
    {
        // Twelve repetitions recorded, but forwarder-l7 only in three: its metrics would be read
        // from a quartile of three, which the gate refuses rather than passing on partial data.
        var baseline = Path.Combine(_directory.FullName, "gate.json");
        var samples = GateSamples.Make(12).Where(s => s.Arm != "forwarder-l7" || s.Rep <= 3).ToList();
        new GateBaseline(QuickSettings, samples, "m", DateTimeOffset.UtcNow, new Dictionary<string, string>()).Write(baseline);
        var log = new StringWriter();

        var exitCode = await GateCommand.RunAsync(new GateOptions(baseline, false, 12, QuickSettings, GatePolicy.Default, null, ForwarderBuild.Debug()), log, CancellationToken.None);

        Assert.Equal(GateCommand.ExitSetup, exitCode);
        Assert.Contains("gate: 3 baseline (12 recorded, but its sparsest metric has both arms in only 3) and 12 current repetitions are too few", log.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("rep 1", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpdateBaseline_PoolsEveryArmOfEveryRepetitionOfEverySession()
    {
        var baseline = Path.Combine(_directory.FullName, "recorded", "gate.json");
        var log = new StringWriter();

        var exitCode = await GateCommand.RunAsync(new GateOptions(baseline, true, 2, QuickSettings, GatePolicy.Default, null, ForwarderBuild.Debug(), Sessions: 2), log, CancellationToken.None);
        output.WriteLine(log.ToString());

        Assert.Equal(GateCommand.ExitPass, exitCode);
        Assert.Contains("session 2/2", log.ToString(), StringComparison.Ordinal);
        var recorded = GateBaseline.Read(baseline);
        Assert.Equal(QuickSettings, recorded.Settings);
        Assert.Equal([1, 2, 3, 4], recorded.Samples.Select(s => s.Rep).Distinct().Order());
        Assert.Equal(["direct", "forwarder", "forwarder-l7"], recorded.Samples.Select(s => s.Arm).Distinct().Order());
        Assert.All(recorded.Samples, s => Assert.True(s.P50Us > 0 && s.P99Us >= s.P50Us && s.MaxRps > 0, s.ToString()));
    }

    private async Task<(int ExitCode, string Log, string Summary)> RunAgainstAsync(List<GateSample> baselineSamples)
    {
        var baseline = Path.Combine(_directory.FullName, "gate.json");
        var summary = Path.Combine(_directory.FullName, "summary.md");
        new GateBaseline(QuickSettings, baselineSamples, "crafted", DateTimeOffset.UtcNow, new Dictionary<string, string>()).Write(baseline);
        var log = new StringWriter();

        var exitCode = await GateCommand.RunAsync(new GateOptions(baseline, false, 6, QuickSettings with { Backend = "nginx" }, GatePolicy.Default, summary, ForwarderBuild.Debug()), log, CancellationToken.None);
        output.WriteLine(log.ToString());

        return (exitCode, log.ToString(), File.ReadAllText(summary));
    }

    /// <summary>The "current overhead" column of a metric's summary row, in percent.</summary>
    private static double CurrentOverhead(string[] rows, string metric)
    {
        var cells = rows.Single(row => row.StartsWith($"| {metric} |", StringComparison.Ordinal)).Split('|', StringSplitOptions.TrimEntries);
        return double.Parse(cells[3].TrimEnd('%'), System.Globalization.CultureInfo.InvariantCulture);
    }
}
