using Forwarder.Bench.Gate;

namespace Forwarder.Bench.Tests.Gate;

public sealed class GateComparisonTests
{
    private static readonly GatePolicy Policy = new(P50Growth: 0.05, P99Growth: 0.30, ThroughputGrowth: 0.10, OpenP99Growth: 0.30, MinimumPoints: 0.02, Alpha: 0.01, OpenP99MinimumPoints: 0.5, RssGrowth: 0.15, RssMinimumMiB: 4);

    [Fact]
    public void SameDistribution_EveryMetricIsSame()
    {
        var verdicts = GateComparison.Compare(GateSamples.Make(12, seed: 1), GateSamples.Make(8, seed: 2), Policy);

        Assert.Equal(GateMetric.All.Count, verdicts.Count);
        Assert.All(verdicts, v => Assert.Equal(GateOutcome.Same, v.Outcome));
        Assert.True(GateReport.Passed(verdicts));
    }

    [Fact]
    public void P50OverheadGrownByTwentyPercent_IsWorseOnThatMetricOnly()
    {
        // Overhead 0.8 grown by 20% is 0.96: the allowance is 5% of 0.8 = 0.04.
        var verdicts = GateComparison.Compare(GateSamples.Make(12, seed: 1), GateSamples.Make(8, seed: 2, l7P50: 1.96), Policy);

        var worse = Assert.Single(verdicts, v => v.Outcome == GateOutcome.Worse);
        Assert.Equal(new GateMetric("forwarder-l7", GateMetricKind.P50), worse.Metric);
        Assert.Equal(0.2, worse.Change, 0.03);
        Assert.Equal(0.04, worse.AllowedGrowth, 0.002);
        Assert.True(worse.PWorse < 0.01);
        Assert.False(GateReport.Passed(verdicts));
    }

    [Fact]
    public void DefaultPolicy_JudgesEachArmByItsOwnAllowance()
    {
        // Every p50 overhead 0.8 grown by 8% to 0.864: past the 2.5% of the tcp, http and link
        // arms, within the HTTP/2 arm's 10% (its A/A copies differed by up to 11%).
        var baseline = GateSamples.Make(12, seed: 1, spread: 0.002);
        var current = GateSamples.Make(12, seed: 2, spread: 0.002, p50: 1.864);

        var verdicts = GateComparison.Compare(baseline, current, GatePolicy.Default);
        var uniform = GateComparison.Compare(baseline, current, GatePolicy.Uniform);

        Assert.Equal(["forwarder", "forwarder-l7", "forwarder-link"], verdicts.Where(v => v.Outcome == GateOutcome.Worse).Select(v => v.Metric.Arm));
        Assert.Equal(0.08, verdicts.Single(v => v.Metric == new GateMetric("forwarder-h2", GateMetricKind.P50)).AllowedGrowth, 0.002);
        Assert.Equal(GateOutcome.Worse, uniform.Single(v => v.Metric == new GateMetric("forwarder-h2", GateMetricKind.P50)).Outcome);
        Assert.Equal((0.6, 0.5), (GatePolicy.Default.For("forwarder-link").P99Growth, GatePolicy.Default.For("forwarder-link").ThroughputGrowth));
        Assert.Same(GatePolicy.Default, GatePolicy.Default.For("forwarder"));
        Assert.Contains("; forwarder-h2: 10% (p50), 30% (p99), 20% (throughput), 30% (open-loop p99)", GatePolicy.Default.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void GrowthWithinTheAllowance_IsSame()
    {
        // 0.8 to 0.816: 2% of the overhead, under the 5% allowed.
        var verdicts = GateComparison.Compare(GateSamples.Make(12, seed: 1, spread: 0.002), GateSamples.Make(8, seed: 2, spread: 0.002, p50: 1.816), Policy);

        Assert.All(verdicts, v => Assert.NotEqual(GateOutcome.Worse, v.Outcome));
    }

    [Fact]
    public void OverheadShrunk_IsBetter()
    {
        var verdicts = GateComparison.Compare(GateSamples.Make(12, seed: 1), GateSamples.Make(8, seed: 2, throughput: 1.5), Policy);

        Assert.All(verdicts.Where(v => v.Metric.Kind == GateMetricKind.Throughput), v => Assert.Equal(GateOutcome.Better, v.Outcome));
        Assert.True(GateReport.Passed(verdicts));
    }

    [Fact]
    public void TinyOverhead_IsAllowedTheMinimumPoints()
    {
        // A 1% overhead would allow 0.05 points; the floor of 2 points keeps noise from failing it.
        var baseline = GateSamples.Make(12, seed: 1, p50: 1.01, spread: 0.005);
        var current = GateSamples.Make(8, seed: 2, p50: 1.025, spread: 0.005);

        var verdict = GateComparison.Compare(new GateMetric("forwarder", GateMetricKind.P50), new GateMetric("forwarder", GateMetricKind.P50).Ratios(baseline), new GateMetric("forwarder", GateMetricKind.P50).Ratios(current), Policy);

        Assert.Equal(0.02, verdict.AllowedGrowth);
        Assert.Equal(GateOutcome.Same, verdict.Outcome);
    }

    [Fact]
    public void SameRepetitionsOnBothSides_ArePaired_SoWhatMovesBothCancels()
    {
        // Repetitions that moved both builds by up to 0.9 (a slow minute), the current build 0.1
        // above the base in every one: paired, that is a sure shift past the 0.04 allowance;
        // drawn independently, the repetitions' own spread hides it.
        double[] baseline = [1.8, 2.4, 1.9, 2.6, 1.85, 2.2, 2.7, 1.95];
        double[] current = [.. baseline.Select(r => r + 0.1)];
        var metric = new GateMetric("forwarder", GateMetricKind.P50);

        var paired = GateComparison.Compare(metric, baseline, current, Policy, paired: true);
        var unpaired = GateComparison.Compare(metric, baseline, current, Policy);

        Assert.Equal(GateOutcome.Worse, paired.Outcome);
        Assert.NotEqual(GateOutcome.Worse, unpaired.Outcome);
        Assert.True(GateComparison.Compare(GateSamples.Make(8, seed: 1), GateSamples.Make(8, seed: 2), Policy).Count == GateMetric.All.Count);
        Assert.Equal([1, 2, 3], metric.Reps(GateSamples.Make(3)));
    }

    [Fact]
    public void Ratios_PairEachProxyRepetitionWithItsOwnDirectRun()
    {
        List<GateSample> samples =
        [
            new("direct", 1, 20, 50, 60_000, 200), new("forwarder", 1, 30, 100, 30_000, 600),
            new("direct", 2, 40, 100, 30_000, 100), new("forwarder", 2, 60, 200, 15_000, 300),
            new("forwarder", 3, 90, 90, 90, 90),
        ];

        Assert.Equal([1.5, 1.5], new GateMetric("forwarder", GateMetricKind.P50).Ratios(samples));
        Assert.Equal([2.0, 2.0], new GateMetric("forwarder", GateMetricKind.P99).Ratios(samples));
        Assert.Equal([2.0, 2.0], new GateMetric("forwarder", GateMetricKind.Throughput).Ratios(samples));
        Assert.Equal([3.0, 3.0], new GateMetric("forwarder", GateMetricKind.OpenP99).Ratios(samples));
    }

    [Fact]
    public void Ratios_OfTheHttp2Arm_AreToTheH2cDirectRun_NotTheHttp1One()
    {
        List<GateSample> samples =
        [
            new("direct", 1, 20, 50, 60_000, 200), new("direct-h2", 1, 40, 80, 40_000, 300),
            new("forwarder-h2", 1, 100, 160, 20_000, 900), new("forwarder-l7", 1, 50, 100, 30_000, 400),
            new("direct", 2, 20, 50, 60_000, 200), new("forwarder-h2", 2, 100, 160, 20_000, 900),
        ];

        // Repetition 2 has no h2c direct run, so the HTTP/2 arm has no ratio there.
        Assert.Equal([2.5], new GateMetric("forwarder-h2", GateMetricKind.P50).Ratios(samples));
        Assert.Equal([1], new GateMetric("forwarder-h2", GateMetricKind.P50).Reps(samples));
        Assert.Equal([2.0], new GateMetric("forwarder-h2", GateMetricKind.P99).Ratios(samples));
        Assert.Equal([2.0], new GateMetric("forwarder-h2", GateMetricKind.Throughput).Ratios(samples));
        Assert.Equal([3.0], new GateMetric("forwarder-h2", GateMetricKind.OpenP99).Ratios(samples));
        Assert.Equal([2.5], new GateMetric("forwarder-l7", GateMetricKind.P50).Ratios(samples));
    }

    [Fact]
    public void Memory_IsTheArmsOwnFigure_GrownPastItsShareIsWorse()
    {
        // 60 MiB grown to 72 (20%) is past the 15% allowed (9 MiB); to 64 it is within it.
        var baseline = GateSamples.Make(10, seed: 1);
        var grown = GateComparison.Compare(baseline, GateSamples.Make(8, seed: 2, rssMiB: 72), Policy);
        var within = GateComparison.Compare(baseline, GateSamples.Make(8, seed: 2, rssMiB: 64), Policy);

        var worse = grown.Where(v => v.Outcome == GateOutcome.Worse).ToArray();
        Assert.Equal(GateMetric.ProxyArms, worse.Select(v => v.Metric.Arm));
        Assert.All(worse, v => Assert.Equal(GateMetricKind.Rss, v.Metric.Kind));
        Assert.Equal(9, worse[0].AllowedGrowth, 0.3);
        Assert.Equal(59, worse[0].BaselineOverhead, 1.0);
        Assert.All(within, v => Assert.NotEqual(GateOutcome.Worse, v.Outcome));
        Assert.Contains("MiB", GateReport.Table(grown), StringComparison.Ordinal);
    }

    [Fact]
    public void SmallProcess_IsAllowedTheMinimumMiB()
    {
        // 10 MiB grown by 3: 30%, but under the 4 MiB no two processes can be told apart by.
        var verdicts = GateComparison.Compare(GateSamples.Make(10, seed: 1, rssMiB: 10), GateSamples.Make(8, seed: 2, rssMiB: 13), Policy);

        Assert.All(verdicts.Where(v => v.Metric.Kind == GateMetricKind.Rss), v => Assert.Equal((GateOutcome.Same, 4.0), (v.Outcome, v.AllowedGrowth)));
    }

    [Fact]
    public void SamplesWithoutMemoryOrAnArm_LeaveThoseMetricsOut()
    {
        // Calibration files recorded before the link and HTTP/2 arms and the memory figure existed.
        var old = GateSamples.Make(8, seed: 1, rssMiB: null).Where(s => s.Arm is not ("forwarder-link" or "forwarder-h2" or "direct-h2")).ToList();

        var verdicts = GateComparison.Compare(old, GateSamples.Make(8, seed: 2), Policy);

        Assert.Equal(2 * 4, verdicts.Count);
        Assert.DoesNotContain(verdicts, v => v.Metric.Kind == GateMetricKind.Rss || v.Metric.Arm is "forwarder-link" or "forwarder-h2");
    }

    [Fact]
    public void TooFewRepetitions_Throw()
    {
        var metric = new GateMetric("forwarder", GateMetricKind.P50);

        var error = Assert.Throws<InvalidOperationException>(() => GateComparison.Compare(metric, [1.8], [1.8, 1.9], Policy));
        Assert.Contains("need at least two repetitions", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DisturbedRepetitions_NeitherHideARegressionNorRaiseAFalseAlarm()
    {
        // As measured on a shared machine: a clean core within a point or two, and a third of the
        // repetitions disturbed by 15-45 points. The lower quartile reads the clean core.
        var metric = new GateMetric("forwarder-l7", GateMetricKind.P50);
        double[] baseline = [2.30, 2.31, 2.75, 2.29, 2.33, 2.74, 2.31, 2.58, 2.31, 2.30, 2.47, 2.32];
        double[] cleanCurrent = [2.31, 2.32, 2.29, 2.33, 2.30, 2.31, 2.32, 2.30, 2.34, 2.31];
        double[] disturbedCurrent = [2.31, 2.72, 2.29, 2.75, 2.30, 2.65, 2.32, 2.30, 2.61, 2.31];
        double[] slower = [2.44, 2.45, 2.46, 2.87, 2.44, 2.45, 2.90, 2.46, 2.45, 2.44];

        Assert.Equal(GateOutcome.Same, GateComparison.Compare(metric, baseline, cleanCurrent, Policy).Outcome);
        Assert.Equal(GateOutcome.Same, GateComparison.Compare(metric, baseline, disturbedCurrent, Policy).Outcome);
        var verdict = GateComparison.Compare(metric, baseline, slower, Policy);
        Assert.Equal(GateOutcome.Worse, verdict.Outcome);
        Assert.Equal(0.11, verdict.Change, 0.02);
    }

    [Fact]
    public void SameFigures_SameVerdictAndPValues()
    {
        var metric = new GateMetric("forwarder", GateMetricKind.P50);
        double[] baseline = [2.07, 2.06, 2.15, 2.08, 2.04, 2.05, 2.05, 2.09];
        double[] current = [2.11, 2.10, 2.12, 2.20, 2.09, 2.10];

        Assert.Equal(GateComparison.Compare(metric, baseline, current, Policy), GateComparison.Compare(metric, baseline, current, Policy));
    }

    [Theory]
    [InlineData(new[] { 1.0, 2, 3, 4, 5 }, 2.0)]
    [InlineData(new[] { 4.0, 1, 3, 2 }, 1.75)]
    [InlineData(new[] { 7.0 }, 7.0)]
    public void LowerQuartile_InterpolatesBetweenOrderStatistics(double[] values, double expected)
        => Assert.Equal(expected, GateComparison.LowerQuartile(values), 9);

    [Fact]
    public void Table_ListsEveryMetricWithItsVerdict()
    {
        var verdicts = GateComparison.Compare(GateSamples.Make(12, seed: 1), GateSamples.Make(8, seed: 2, l7P50: 1.96), Policy);

        var table = GateReport.Table(verdicts);

        Assert.Contains("forwarder-l7 p50 latency", table, StringComparison.Ordinal);
        Assert.Contains("WORSE", table, StringComparison.Ordinal);
        Assert.Equal(GateMetric.All.Count + 1, table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }
}
