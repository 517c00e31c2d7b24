using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

public sealed class GateCalibrationTests
{
    [Fact]
    public void Analyse_CountsAlarmsOnTheSameBuildAndCatchesOnTheSlowedOne()
    {
        // Slowed: +20% of the 0.8 p50 overhead on both proxy arms; spread 1%, well under the 5% allowance.
        var result = Result(sessions: 3, reps: 20, slowedP50: 1.96);

        var analysis = GateCalibration.Analyse(result, GatePolicy.Default, gateReps: 10);

        Assert.Equal(3 * 2, analysis.Blocks.Trials);
        Assert.Equal(3 * 40, analysis.Subsets.Trials);
        Assert.Equal(0, analysis.Blocks.FalseAlarms);
        Assert.Equal(0, analysis.Subsets.FalseAlarms);
        Assert.Equal(1.0, analysis.Subsets.CaughtRate("forwarder"));
        Assert.Equal(1.0, analysis.Blocks.CaughtRate("forwarder-l7"));
        Assert.Equal(0.8, analysis.Growth["forwarder"].Normal, 0.02);
        Assert.Equal(0.96, analysis.Growth["forwarder"].Injected, 0.02);
    }

    [Fact]
    public void Analyse_ADelayTooSmallToSee_IsNotCaught()
    {
        var result = Result(sessions: 2, reps: 10, slowedP50: 1.8);

        var analysis = GateCalibration.Analyse(result, GatePolicy.Default, gateReps: 10);

        Assert.Equal(2, analysis.Blocks.Trials);
        Assert.Equal(2, analysis.Subsets.Trials);
        Assert.Equal(0, analysis.Subsets.CaughtRate("forwarder"));
    }

    [Fact]
    public void Report_PutsBothRatesWithTheirIntervalsInATable()
    {
        var result = Result(sessions: 3, reps: 10, slowedP50: 1.96, spread: 0.0001);

        var report = GateCalibration.Report(result, [GateCalibration.Analyse(result, GatePolicy.Default, 10)]);

        Assert.Contains("| forwarder | +80.0% | +96.0% | +20.0% |", report, StringComparison.Ordinal);
        Assert.Contains("(the gate's) | 3 | 0/3 = 0.0% [0.0%, 56.1%] | 3/3 = 100.0% [43.9%, 100.0%] |", report, StringComparison.Ordinal);
        Assert.Contains("load average 1.00", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Analyse_OtherArms_JudgesThoseArmsAndReportsThem()
    {
        var result = Result(sessions: 2, reps: 10, slowedP50: 1.96, spread: 0.0001, arms: ["forwarder-link", "forwarder-h2"]);

        var analysis = GateCalibration.Analyse(result, GatePolicy.Default, gateReps: 10);
        var report = GateCalibration.Report(result, [analysis]);

        Assert.Equal(["forwarder-link", "forwarder-h2"], analysis.Blocks.Caught.Keys);
        Assert.Equal(1.0, analysis.Blocks.CaughtRate("forwarder-h2"));
        Assert.Equal(0.8, analysis.Growth["forwarder-link"].Normal, 0.02);
        Assert.DoesNotContain("forwarder-l7", report, StringComparison.Ordinal);
        Assert.Contains("| false alarms (A/A) [95% CI] | forwarder-link caught [95% CI] | forwarder-h2 caught [95% CI] |", report, StringComparison.Ordinal);
        Assert.Contains("| forwarder-h2 p50 latency |", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Pool_AddsTheSessionsOfLikeRuns_AndRefusesUnlikeOnes()
    {
        var first = Result(sessions: 2, reps: 10, slowedP50: 1.96);
        var second = Result(sessions: 3, reps: 10, slowedP50: 1.96);

        var pooled = GateCalibration.Pool([first, second]);

        Assert.Equal(5, pooled.Sessions.Count);
        Assert.Equal(10, GateCalibration.Analyse(pooled, GatePolicy.Default, gateReps: 5).Blocks.Trials);
        var unlike = Assert.Throws<InvalidOperationException>(() => GateCalibration.Pool([first, second with { RequestDelayMicroseconds = 9 }]));
        Assert.Contains("in requestDelayUs (2 against 9); only like runs pool", unlike.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pool_RefusesRunsOfOtherSettingsOrMachines_NamingTheField()
    {
        var first = Result(sessions: 1, reps: 10, slowedP50: 1.96);

        var slices = Assert.Throws<InvalidOperationException>(() => GateCalibration.Pool([first, first with { Settings = first.Settings with { Slices = 5 } }]));
        var backend = Assert.Throws<InvalidOperationException>(() => GateCalibration.Pool([first, first, first with { Settings = first.Settings with { Backend = "builtin" } }]));
        var machine = Assert.Throws<InvalidOperationException>(() => GateCalibration.Pool([first, first with { Machine = "other" }]));

        Assert.Contains("in slices (10 against 5)", slices.Message, StringComparison.Ordinal);
        Assert.Contains("in backend (nginx against builtin)", backend.Message, StringComparison.Ordinal);
        Assert.Contains("in machine (m against other)", machine.Message, StringComparison.Ordinal);
        Assert.Equal(2, GateCalibration.Pool([first, first with { Settings = first.Settings with { Arms = ["forwarder", "forwarder-l7"] } }]).Sessions.Count);
    }

    [Fact]
    public void Quantile_LeavesOutNaN()
    {
        // With the NaNs sorted in first, the median would be 1.
        Assert.Equal(2, GateCalibration.Quantile([double.NaN, 3, double.NaN, 1, 2], 0.5));
        Assert.Equal(3, GateCalibration.Quantile([double.NaN, 3, 1, 2], 1));
        Assert.True(double.IsNaN(GateCalibration.Quantile([double.NaN, double.NaN], 0.95)));
    }

    [Theory]
    [InlineData(0, 300, 0.0, 0.0126)]
    [InlineData(290, 300, 0.9397, 0.9818)]
    public void Wilson_MatchesTheScoreInterval(int k, int n, double low, double high)
    {
        var (l, h) = GateCalibration.Wilson(k, n);

        Assert.Equal(low, l, 0.0005);
        Assert.Equal(high, h, 0.0005);
    }

    private static CalibrationResult Result(int sessions, int reps, double slowedP50, double spread = 0.01, IReadOnlyList<string>? arms = null)
    {
        List<CalibrationSession> list = [.. Enumerable.Range(1, sessions).Select(s => new CalibrationSession(
            GateSamples.Make(reps, seed: s, spread: spread),
            GateSamples.Make(reps, seed: 50 + s, spread: spread),
            GateSamples.Make(reps, seed: 100 + s, p50: slowedP50, spread: spread)))];
        return new CalibrationResult(GateSettings.Default("nginx") with { Arms = arms }, 1, 2, list, "m", DateTimeOffset.UtcNow, "load average 1.00");
    }
}
