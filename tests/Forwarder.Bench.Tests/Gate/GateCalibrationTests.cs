using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

public sealed class GateCalibrationTests
{
    [Fact]
    public void Analyse_CountsFalseAlarmsOnNormalPairsAndCatchesOnInjectedOnes()
    {
        // Injected: +20% of the 0.8 p50 overhead on both proxy arms; spread 1%, well under the 5% allowance.
        List<CalibrationSession> sessions = [.. Enumerable.Range(1, 4).Select(s => new CalibrationSession(
            GateSamples.Make(10, seed: s),
            GateSamples.Make(10, seed: 100 + s, p50: 1.96)))];
        var result = new CalibrationResult(GateSettings.Default("nginx"), 1, 2, sessions, "m", DateTimeOffset.UtcNow);

        var analysis = GateCalibration.Analyse(result, GatePolicy.Default, gateReps: 8);

        Assert.Equal(4 * 3 * 40, analysis.Trials);
        Assert.Equal(0, analysis.FalseAlarms);
        Assert.Equal(1.0, analysis.CaughtRate("forwarder"));
        Assert.Equal(1.0, analysis.CaughtRate("forwarder-l7"));
        Assert.Equal(0.8, analysis.Growth["forwarder"].Normal, 0.02);
        Assert.Equal(0.96, analysis.Growth["forwarder"].Injected, 0.02);
    }

    [Fact]
    public void Analyse_Pooled_ComparesEachSessionWithAllTheOthers()
    {
        // Session 1's normal build runs 2 points high, inside the 4-point allowance: pooled with
        // the others it raises no alarm as a current run, and a +10% slowdown is still caught.
        List<CalibrationSession> sessions = [.. Enumerable.Range(1, 4).Select(s => new CalibrationSession(
            GateSamples.Make(10, seed: s, p50: s == 1 ? 1.82 : 1.8, spread: 0.002),
            GateSamples.Make(10, seed: 100 + s, p50: 1.9, spread: 0.002)))];
        var result = new CalibrationResult(GateSettings.Default("nginx"), 1, 2, sessions, "m", DateTimeOffset.UtcNow);

        var pooled = GateCalibration.Analyse(result, GatePolicy.Default, gateReps: 8, pooled: true);

        Assert.True(pooled.Pooled);
        Assert.Equal(4 * 40, pooled.Trials);
        Assert.Equal(0, pooled.FalseAlarms);
        Assert.Equal(1.0, pooled.CaughtRate("forwarder"));
        Assert.Equal(1.0, pooled.CaughtRate("forwarder-l7"));
    }

    [Fact]
    public void Analyse_ADelayTooSmallToSee_IsNotCaught()
    {
        List<CalibrationSession> sessions = [.. Enumerable.Range(1, 3).Select(s => new CalibrationSession(
            GateSamples.Make(8, seed: s),
            GateSamples.Make(8, seed: 100 + s, p50: 1.8))).ToList()];
        var result = new CalibrationResult(GateSettings.Default("nginx"), 0, 0, sessions, "m", DateTimeOffset.UtcNow);

        var analysis = GateCalibration.Analyse(result, GatePolicy.Default, gateReps: 8);

        Assert.Equal(3 * 2, analysis.Trials);
        Assert.Equal(0, analysis.CaughtRate("forwarder"));
    }

    [Fact]
    public void Report_PutsBothRatesInATable()
    {
        List<CalibrationSession> sessions = [.. Enumerable.Range(1, 3).Select(s => new CalibrationSession(GateSamples.Make(8, seed: s, spread: 0.0001), GateSamples.Make(8, seed: 100 + s, p50: 1.96, spread: 0.0001)))];
        var result = new CalibrationResult(GateSettings.Default("nginx"), 1.5, 3, sessions, "m", DateTimeOffset.UtcNow);

        var report = GateCalibration.Report(result, [GateCalibration.Analyse(result, GatePolicy.Default, 8)]);

        Assert.Contains("| forwarder | +80.0% | +96.0% | +20.0% |", report, StringComparison.Ordinal);
        Assert.Contains("| one other session | p50 5%, p99 30%, throughput 10%, min 2 pts, α 0.01 (the gate's) | 6 | 0 (0.0%) | 100.0% | 100.0% |", report, StringComparison.Ordinal);
    }
}
