using System.Globalization;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// A condition on a scenario's stats (or one step's) that must hold, or the run fails. It is
/// checked at every reporting interval while the run goes (a break aborts the run) and once more at
/// the end. <see cref="Check"/> returns null while there is nothing to judge (no invocations yet,
/// or a figure that only means something at the end); at the end, null fails.
/// </summary>
/// <param name="Description">How the report names it.</param>
/// <param name="Check">True when it holds, false when it is broken, null when there is nothing to judge.</param>
public sealed record Threshold(string Description, Func<ScenarioStats, bool?> Check)
{
    /// <summary>The latency at <paramref name="percentile"/> (of <paramref name="step"/>, or of whole invocations) is under <paramref name="limit"/>.</summary>
    public static Threshold LatencyBelow(double percentile, TimeSpan limit, string? step = null)
        => new(Describe(step, string.Create(CultureInfo.InvariantCulture, $"p{percentile} latency < {limit.TotalMilliseconds} ms")), s => step is null
            ? s.Latency.TotalCount > 0 ? s.LatencyAtPercentile(percentile) < limit : null
            : s.Steps.TryGetValue(step, out var stats) && stats.Latency.TotalCount > 0 ? stats.LatencyAtPercentile(percentile) < limit : null);

    /// <summary>Failed invocations (or runs of <paramref name="step"/>) are under <paramref name="fraction"/> of all.</summary>
    public static Threshold ErrorRateBelow(double fraction, string? step = null)
        => new(Describe(step, string.Create(CultureInfo.InvariantCulture, $"error rate < {fraction * 100:0.###}%")), s => step is null
            ? s.Count > 0 ? s.ErrorRate < fraction : null
            : s.Steps.TryGetValue(step, out var stats) && stats.Count > 0 ? stats.ErrorRate < fraction : null);

    /// <summary>Throughput reached at least <paramref name="perSecond"/>; judged at the end only, since a run's first seconds say little about it.</summary>
    public static Threshold RequestsPerSecondAtLeast(double perSecond)
        => new(string.Create(CultureInfo.InvariantCulture, $"requests/s >= {perSecond}"), s => s.IsFinal ? s.RequestsPerSecond >= perSecond : null);

    private static string Describe(string? step, string condition) => step is null ? condition : $"step '{step}' {condition}";
}

/// <summary>How one threshold fared at the end of the run.</summary>
/// <param name="Description">The threshold's description.</param>
/// <param name="Passed">It held at the end and did not break during the run.</param>
public sealed record ThresholdResult(string Description, bool Passed);

/// <summary>The threshold whose break aborted the run, and when.</summary>
/// <param name="Description">The threshold's description.</param>
/// <param name="At">Time into the measured window (after warm-up) of the check that found it broken.</param>
public sealed record ThresholdBreach(string Description, TimeSpan At);
