using System.Globalization;

namespace Forwarder.Bench.Gate;

/// <summary>
/// When a moved metric counts as a regression: its overhead (cost ratio minus one) grew by more
/// than a share of the base build's overhead, and never less than <paramref name="MinimumPoints"/>
/// of the direct arm's figure, at significance <paramref name="Alpha"/> (one-sided bootstrap of the
/// lower-quartile shift, see <see cref="GateComparison"/>).
/// The defaults come from the calibration in perf-reports/gate-calibration.
/// </summary>
internal sealed record GatePolicy(double P50Growth, double P99Growth, double ThroughputGrowth, double OpenP99Growth, double MinimumPoints, double Alpha)
{
    public static readonly GatePolicy Default = new(0.05, 0.30, 0.10, 0.30, 0.02, 0.01);

    public double GrowthOf(GateMetricKind kind) => kind switch
    {
        GateMetricKind.P50 => P50Growth,
        GateMetricKind.P99 => P99Growth,
        GateMetricKind.OpenP99 => OpenP99Growth,
        _ => ThroughputGrowth,
    };

    public string Describe() => string.Create(
        CultureInfo.InvariantCulture,
        $"a regression is overhead grown by more than {P50Growth:0.#%} (p50), {P99Growth:0.#%} (p99), {ThroughputGrowth:0.#%} (throughput) or {OpenP99Growth:0.#%} (open-loop p99) of the base build's, at least {MinimumPoints * 100:0.#} points, lower quartiles of the repetitions compared by a one-sided bootstrap, p < {Alpha}");
}
