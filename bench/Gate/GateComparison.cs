using System.Globalization;
using Forwarder.Bench.Compare;
using Perfolizer;
using Perfolizer.Mathematics.SignificanceTesting.Base;
using Perfolizer.Mathematics.SignificanceTesting.MannWhitney;
using Perfolizer.Metrology;

namespace Forwarder.Bench.Gate;

/// <summary>Whether a metric moved beyond its allowance, and which way.</summary>
internal enum GateOutcome
{
    Same,
    Worse,
    Better,
}

/// <summary>One metric's verdict: medians of both sides as overheads (ratio minus one), the growth allowed, and the test's p-values.</summary>
internal sealed record MetricVerdict(GateMetric Metric, double BaselineOverhead, double CurrentOverhead, double AllowedGrowth, double PWorse, double PBetter, GateOutcome Outcome)
{
    /// <summary>How far the overhead moved, as a share of the baseline's; NaN when the baseline had next to none.</summary>
    public double Change => BaselineOverhead > 0.005 ? (CurrentOverhead / BaselineOverhead) - 1 : double.NaN;
}

/// <summary>
/// Compares a run to a baseline metric by metric. Each repetition gives one cost ratio per metric;
/// the one-sided Mann-Whitney test with a threshold (Perfolizer) asks whether the current ratios
/// are larger than the baseline's grown by the allowance, which a handful of noisy repetitions
/// cannot fake the way a difference of means can.
/// </summary>
internal static class GateComparison
{
    public static IReadOnlyList<MetricVerdict> Compare(IReadOnlyList<GateSample> baseline, IReadOnlyList<GateSample> current, GatePolicy policy)
        => [.. GateMetric.All.Select(metric => Compare(metric, metric.Ratios(baseline), metric.Ratios(current), policy))];

    public static MetricVerdict Compare(GateMetric metric, double[] baseline, double[] current, GatePolicy policy)
    {
        if (baseline.Length < 2 || current.Length < 2)
        {
            throw new InvalidOperationException($"{metric.Name}: need at least two repetitions on each side (baseline {baseline.Length}, current {current.Length}).");
        }

        var baseRatio = CompareReportWriter.Median(baseline);
        var allowed = Math.Max(policy.GrowthOf(metric.Kind) * (baseRatio - 1), policy.MinimumPoints);
        var threshold = Threshold.Parse(string.Create(CultureInfo.InvariantCulture, $"{allowed / baseRatio * 100:0.######}%"));
        var test = MannWhitneyTest.Instance;
        var pWorse = test.Perform(new Sample(current), new Sample(baseline), AlternativeHypothesis.Greater, threshold).PValue.Value;
        var pBetter = test.Perform(new Sample(baseline), new Sample(current), AlternativeHypothesis.Greater, threshold).PValue.Value;
        var outcome = pWorse < policy.Alpha ? GateOutcome.Worse : pBetter < policy.Alpha ? GateOutcome.Better : GateOutcome.Same;
        return new MetricVerdict(metric, baseRatio - 1, CompareReportWriter.Median(current) - 1, allowed, pWorse, pBetter, outcome);
    }

    /// <summary>Whether samples this small can reach the significance asked for at all: Mann-Whitney's smallest p-value is 1 / C(n + m, m).</summary>
    public static bool CanReach(int baselineReps, int currentReps, double alpha)
    {
        var arrangements = 1.0;
        for (var i = 1; i <= currentReps; i++)
        {
            arrangements = arrangements * (baselineReps + i) / i;
        }

        return 1 / arrangements < alpha / 10;
    }
}
