using System.Globalization;

namespace Forwarder.Bench.Scenarios;

/// <summary>A condition on a scenario's stats that must hold, or the run fails.</summary>
internal sealed record Threshold(string Description, Func<ScenarioStats, bool> Check)
{
    /// <summary>The latency at <paramref name="percentile"/> is under <paramref name="limit"/>; a run with nothing measured shows nothing and fails.</summary>
    public static Threshold LatencyBelow(double percentile, TimeSpan limit)
        => new(string.Create(CultureInfo.InvariantCulture, $"p{percentile} latency < {limit.TotalMilliseconds} ms"), s => s.Latency.TotalCount > 0 && s.LatencyAtPercentile(percentile) < limit);

    /// <summary>Failed invocations are under <paramref name="fraction"/> of all; a run with no invocations fails.</summary>
    public static Threshold ErrorRateBelow(double fraction)
        => new(string.Create(CultureInfo.InvariantCulture, $"error rate < {fraction * 100:0.###}%"), s => s.Count > 0 && s.ErrorRate < fraction);

    /// <summary>Throughput reached at least <paramref name="perSecond"/>.</summary>
    public static Threshold RequestsPerSecondAtLeast(double perSecond)
        => new(string.Create(CultureInfo.InvariantCulture, $"requests/s >= {perSecond}"), s => s.RequestsPerSecond >= perSecond);
}

/// <summary>How one threshold fared.</summary>
internal sealed record ThresholdResult(string Description, bool Passed);
