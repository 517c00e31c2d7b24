using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Gate;

/// <summary>Whether a metric moved beyond its allowance, and which way.</summary>
internal enum GateOutcome
{
    Same,
    Worse,
    Better,
}

/// <summary>One metric's verdict: lower quartiles of both sides as overheads (ratio minus one), the growth allowed, and the test's p-values.</summary>
internal sealed record MetricVerdict(GateMetric Metric, double BaselineOverhead, double CurrentOverhead, double AllowedGrowth, double PWorse, double PBetter, GateOutcome Outcome)
{
    /// <summary>How far the overhead moved, as a share of the baseline's; NaN when the baseline had next to none.</summary>
    public double Change => BaselineOverhead > 0.005 ? (CurrentOverhead / BaselineOverhead) - 1 : double.NaN;
}

/// <summary>
/// Compares a run to a baseline metric by metric. Each repetition gives one cost ratio per metric.
/// Interference on a shared machine only ever adds cost, and it hits whole repetitions: in the
/// calibration a quarter to half of a session's repetitions could sit 15-45 points above the rest.
/// So the gate compares the lower quartile of the repetitions (the cost without interference,
/// which does not move with how many repetitions were disturbed) and tests the shift with a
/// percentile bootstrap: the p-value is the share of resampled shifts within the allowance. A
/// rank test over all repetitions (Mann-Whitney) was tried first and missed a fifth of real
/// slowdowns whenever the baseline had drawn many disturbed repetitions.
/// </summary>
internal static class GateComparison
{
    /// <summary>Fewer repetitions than this make a quartile one of them, and the bootstrap says little.</summary>
    public const int MinimumReps = 6;

    /// <summary>Where the gate reads each side: the lower quartile of the repetitions' ratios.</summary>
    public const double Quantile = 0.25;

    private const int Resamples = 4000;

    /// <summary>
    /// Every metric both sides measured (samples recorded before an arm or the memory figure
    /// existed have none of it); when both sides measured the same repetitions (base and current
    /// interleaved in one session) the bootstrap draws the same repetitions for both, so what a
    /// repetition did to both builds (a slow minute, a faster direct run) cancels instead of
    /// widening the shift.
    /// </summary>
    public static IReadOnlyList<MetricVerdict> Compare(IReadOnlyList<GateSample> baseline, IReadOnlyList<GateSample> current, GatePolicy policy)
        => [.. GateMetric.All
            .Where(metric => metric.Reps(baseline).Length > 0 && metric.Reps(current).Length > 0)
            .Select(metric => Compare(metric, metric.Ratios(baseline), metric.Ratios(current), policy.For(metric.Arm), paired: metric.Reps(baseline).SequenceEqual(metric.Reps(current))))];

    /// <param name="paired">The two arrays hold the same repetitions in the same order.</param>
    public static MetricVerdict Compare(GateMetric metric, double[] baseline, double[] current, GatePolicy policy, bool paired = false)
    {
        if (baseline.Length < 2 || current.Length < 2)
        {
            throw new InvalidOperationException($"{metric.Name}: need at least two repetitions on each side (baseline {baseline.Length}, current {current.Length}).");
        }

        var baseRatio = LowerQuartile(baseline);
        var currentRatio = LowerQuartile(current);
        var allowed = Math.Max(policy.GrowthOf(metric.Kind) * (baseRatio - 1), policy.FloorOf(metric.Kind));

        // Seeded from the data (not HashCode, which is salted per process), so the same figures
        // always give the same verdict.
        var random = new Random(Seed(metric.Name, baseline, current));
        int withinWorse = 0, withinBetter = 0;
        var baseDraw = new double[baseline.Length];
        var currentDraw = new double[current.Length];
        var picks = new int[current.Length];
        for (var i = 0; i < Resamples; i++)
        {
            if (paired)
            {
                for (var k = 0; k < picks.Length; k++)
                {
                    picks[k] = random.Next(picks.Length);
                    currentDraw[k] = current[picks[k]];
                    baseDraw[k] = baseline[picks[k]];
                }
            }
            else
            {
                Draw(current, currentDraw, random);
                Draw(baseline, baseDraw, random);
            }

            var shift = LowerQuartile(currentDraw) - LowerQuartile(baseDraw);
            withinWorse += shift <= allowed ? 1 : 0;
            withinBetter += shift >= -allowed ? 1 : 0;
        }

        // The add-one keeps a p-value from being zero, which no finite resampling can show.
        var pWorse = (withinWorse + 1.0) / (Resamples + 1);
        var pBetter = (withinBetter + 1.0) / (Resamples + 1);
        var outcome = pWorse < policy.Alpha ? GateOutcome.Worse : pBetter < policy.Alpha ? GateOutcome.Better : GateOutcome.Same;
        return new MetricVerdict(metric, baseRatio - 1, currentRatio - 1, allowed, pWorse, pBetter, outcome);
    }

    /// <summary>The lower quartile, interpolated between order statistics (Hyndman-Fan type 7).</summary>
    public static double LowerQuartile(ReadOnlySpan<double> values)
    {
        Span<double> sorted = values.Length <= 64 ? stackalloc double[values.Length] : new double[values.Length];
        values.CopyTo(sorted);
        sorted.Sort();
        var position = (sorted.Length - 1) * Quantile;
        var below = (int)position;
        var above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + ((sorted[above] - sorted[below]) * (position - below));
    }

    private static int Seed(string name, double[] baseline, double[] current)
    {
        // FNV-1a over the name's characters and the figures' bits.
        var hash = 14695981039346656037UL;
        foreach (var bits in name.Select(c => (ulong)c).Concat(baseline.Concat(current).Select(v => (ulong)BitConverter.DoubleToInt64Bits(v))))
        {
            hash = (hash ^ bits) * 1099511628211UL;
        }

        return (int)(hash ^ (hash >> 32));
    }

    private static void Draw(double[] values, double[] into, Random random)
    {
        for (var i = 0; i < into.Length; i++)
        {
            into[i] = values[random.Next(values.Length)];
        }
    }
}
