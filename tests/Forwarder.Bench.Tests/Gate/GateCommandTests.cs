using Forwarder.Bench.Compare;
using Forwarder.Bench.Gate;
using Xunit.Abstractions;

namespace Forwarder.Bench.Tests.Gate;

/// <summary>
/// The A/B gate end to end on real processes (built-in backend): the same build on both sides
/// passes under allowances no noise reaches, a build slowed by half a millisecond a hop fails
/// under the default rule, and a base that cannot run is a setup error, not a verdict.
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class GateCommandTests(ITestOutputHelper output) : IDisposable
{
    // Slices of 400 ms: on a loaded 2-core runner (the other test assemblies run beside this one)
    // a closed-loop worker's connection can take hundreds of milliseconds, and an arm that ran no
    // request in a repetition (rightly) stops the gate; three slices of 200 ms once all came up empty.
    // The listeners only: the rule and the open loop are what these tests prove, and more
    // processes per build would only slow them. The link and HTTP/2 arms run in the end-to-end pass.
    internal static readonly GateSettings QuickSettings = new(1, TimeSpan.FromMilliseconds(1200), 3, 8, TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(100), 1, "builtin", 200, TimeSpan.FromMilliseconds(500), ["forwarder", "forwarder-l7"]);

    /// <summary>Growth allowed up to threefold the base's overhead and never under 100 points (memory: 100 MiB): what two copies of one build cannot drift apart by.</summary>
    private static readonly GatePolicy Wide = new(3, 3, 3, 3, 1, 0.01, 3, 3, 100);

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("gate-command-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task SameBuildOnBothSides_PassesAndAppendsATrendLine()
    {
        var history = Path.Combine(_directory.FullName, "history", "gate.tsv");
        var (exitCode, log, summary) = await RunAsync(new GateOptions(6, QuickSettings with { Arms = null }, Wide, Summary, ForwarderBuild.Debug(), null, ForwarderBuild.Debug(), history));

        Assert.Equal(GateCommand.ExitPass, exitCode);
        Assert.Contains("gate: pass", log, StringComparison.Ordinal);
        Assert.StartsWith("## Latency gate: pass", summary, StringComparison.Ordinal);
        Assert.Contains("| current | forwarder-l7 |", summary, StringComparison.Ordinal);
        Assert.Contains("| base | forwarder |", summary, StringComparison.Ordinal);
        Assert.Contains("| current | forwarder-link |", summary, StringComparison.Ordinal);
        Assert.Contains("forwarder-link memory", summary, StringComparison.Ordinal);
        Assert.Contains("| current | forwarder-h2 |", summary, StringComparison.Ordinal);
        Assert.Contains("| - | direct-h2 |", summary, StringComparison.Ordinal);
        Assert.Contains("| forwarder-h2 p50 latency |", summary, StringComparison.Ordinal);
        var lines = File.ReadAllLines(history);
        Assert.Equal(GateHistory.Header, lines[0]);
        var fields = Assert.Single(lines[1..]).Split('\t');
        Assert.Equal(GateHistory.Header.Split('\t').Length, fields.Length);
        Assert.Equal(BaseCheckout.Resolve(ForwarderBinary.RepositoryRoot()!, "HEAD"), fields[1]);
        Assert.Equal("given", fields[2]);
        // The p50 overheads of a proxy over no proxy are well above none in any run.
        Assert.True(double.Parse(fields[3], System.Globalization.CultureInfo.InvariantCulture) > 0.1, fields[3]);
        Assert.True(double.Parse(fields[4], System.Globalization.CultureInfo.InvariantCulture) > 0.1, fields[4]);
        // The link's p50 overhead is two hops and TLS: above the single hop's.
        Assert.True(double.Parse(fields[8], System.Globalization.CultureInfo.InvariantCulture) > double.Parse(fields[3], System.Globalization.CultureInfo.InvariantCulture), $"{fields[8]} vs {fields[3]}");
        // Two nodes of a JIT build hold tens of MiB.
        Assert.True(double.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture) > 20, fields[12]);
        // The native HTTP/2 front over the h2c direct run: a hop's cost, measured against its own protocol.
        Assert.True(double.Parse(fields[13], System.Globalization.CultureInfo.InvariantCulture) > 0.1, fields[13]);
        Assert.True(double.Parse(fields[15], System.Globalization.CultureInfo.InvariantCulture) > 10, fields[15]);
    }

    [Fact]
    public async Task HalfAMillisecondAddedPerHop_IsARegression()
    {
        // 500 µs of busy wait per chunk (tcp) and per request (http): the p50 overheads grow
        // from about 100 µs to over 600 µs, far past any noise of a loaded machine.
        var slowed = ForwarderBinary.Locate(null, new StringWriter(), "DelayInjection");
        var log = new StringWriter();
        await using (var session = await GateSession.StartAsync(QuickSettings, [new GateBuild("base", ForwarderBuild.Debug()), new GateBuild("current", slowed, 500, 500)], log))
        {
            await session.WarmAsync(CancellationToken.None);
            List<GateSample> baseSamples = [], current = [];
            for (var rep = 1; rep <= 6; rep++)
            {
                var samples = await session.RunRepAsync(rep, CancellationToken.None);
                baseSamples.AddRange(samples["base"]);
                current.AddRange(samples["current"]);
            }

            output.WriteLine(log.ToString());
            var verdicts = GateComparison.Compare(baseSamples, current, GatePolicy.Default);
            output.WriteLine(GateReport.Table(verdicts));
            Assert.False(GateReport.Passed(verdicts));
            Assert.All(GateMetric.All.Where(m => m.Kind == GateMetricKind.P50 && QuickSettings.ProxyArms.Contains(m.Arm)), metric => Assert.Equal(GateOutcome.Worse, verdicts.Single(v => v.Metric == metric).Outcome));
        }
    }

    [Fact]
    public async Task NoSuchBase_ExitsWithSetupErrorBeforeMeasuring()
    {
        var (exitCode, log, summary) = await RunAsync(new GateOptions(6, QuickSettings, GatePolicy.Default, Summary, ForwarderBuild.Debug(), "no-such-ref-for-the-gate"));

        Assert.Equal(GateCommand.ExitSetup, exitCode);
        Assert.Contains("gate: cannot compare: the base no-such-ref-for-the-gate is not a commit", log, StringComparison.Ordinal);
        Assert.StartsWith("## Latency gate: not run", summary, StringComparison.Ordinal);
        Assert.DoesNotContain("rep 1", log, StringComparison.Ordinal);
        // Only this process's checkouts: another gate on the machine (a CI run beside this one)
        // may hold its own base checkout in the same temp folder.
        Assert.Empty(Directory.GetDirectories(Path.GetTempPath(), $"bench-gate-base-*-{Environment.ProcessId}"));
    }

    [Fact]
    public async Task BaseThatDoesNotRun_ExitsWithSetupError()
    {
        var (exitCode, log, _) = await RunAsync(new GateOptions(6, QuickSettings, GatePolicy.Default, Summary, ForwarderBuild.Debug(), null, "/bin/false"));

        Assert.Equal(GateCommand.ExitSetup, exitCode);
        Assert.Contains("gate: cannot compare: the base build's forwarder would not start", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TooFewRepetitions_ExitWithSetupError()
    {
        var (exitCode, log, _) = await RunAsync(new GateOptions(4, QuickSettings, GatePolicy.Default, null, ForwarderBuild.Debug(), null, ForwarderBuild.Debug()));

        Assert.Equal(GateCommand.ExitSetup, exitCode);
        Assert.Contains("4 repetitions are too few for a quartile; at least 6 (--reps)", log, StringComparison.Ordinal);
    }

    private string Summary => Path.Combine(_directory.FullName, "summary.md");

    private async Task<(int ExitCode, string Log, string Summary)> RunAsync(GateOptions options)
    {
        var log = new StringWriter();
        var exitCode = await GateCommand.RunAsync(options, log, CancellationToken.None);
        output.WriteLine(log.ToString());
        return (exitCode, log.ToString(), options.SummaryPath is { } path && File.Exists(path) ? File.ReadAllText(path) : string.Empty);
    }
}
