using System.Globalization;

namespace Forwarder.Bench.Gate;

/// <summary>
/// When a moved metric counts as a regression: its overhead (cost ratio minus one) grew by more
/// than a share of the base build's overhead, and never less than <paramref name="MinimumPoints"/>
/// of the direct arm's figure, at significance <paramref name="Alpha"/> (one-sided bootstrap of the
/// lower-quartile shift, see <see cref="GateComparison"/>). The open-loop p99 has a floor of its own,
/// <paramref name="OpenP99MinimumPoints"/>: a p99 of one second at a fixed rate is set by the
/// machine's hiccups as much as by the proxy, so its overhead sits near none and two copies of one
/// build differed by up to 30 points in the calibration, while a 20 ms freeze every 100 ms added
/// hundreds. Memory (<see cref="GateMetricKind.Rss"/>) is a figure of its own, in MiB: it may grow
/// by <paramref name="RssGrowth"/> of the base build's and never less than
/// <paramref name="RssMinimumMiB"/>, about what two processes of one build differ by after the
/// same load (the GC's heap and the pools' high-water marks).
/// The defaults come from the calibration in perf-reports/gate-calibration. <paramref name="PerArm"/>
/// holds the arms whose own calibration (2026-12-08) asked for other allowances: two copies of one
/// build differed by up to +11% of the HTTP/2 arm's p50 overhead (the tcp and http listeners' stay
/// within 2.5%), by up to +109% of the link arm's p99 overhead and by several times its
/// throughput cost, whose closed loop of 32 connections over one yamux link swings between two levels.
/// </summary>
internal sealed record GatePolicy(double P50Growth, double P99Growth, double ThroughputGrowth, double OpenP99Growth, double MinimumPoints, double Alpha, double OpenP99MinimumPoints, double RssGrowth, double RssMinimumMiB, IReadOnlyDictionary<string, GatePolicy>? PerArm = null)
{
    /// <summary>The same allowances for every arm: the calibrated defaults of the tcp and http listeners.</summary>
    public static readonly GatePolicy Uniform = new(0.025, 0.30, 0.20, 0.30, 0.02, 0.05, 0.50, 0.15, 4);

    public static readonly GatePolicy Default = Uniform with
    {
        PerArm = new Dictionary<string, GatePolicy>
        {
            ["forwarder-link"] = Uniform with { P99Growth = 0.60, ThroughputGrowth = 0.50 },
            ["forwarder-h2"] = Uniform with { P50Growth = 0.10 },
        },
    };

    /// <summary>
    /// This policy with <paramref name="change"/> made to its own allowances and to each arm's: a
    /// command-line allowance, or a calibration's what-if, holds for every arm, while the
    /// allowances it does not touch keep each arm's own value.
    /// </summary>
    public GatePolicy ForEveryArm(Func<GatePolicy, GatePolicy> change)
        => change(this) with { PerArm = PerArm?.ToDictionary(arm => arm.Key, arm => change(arm.Value)) };

    /// <summary>The allowances of one proxy arm's metrics.</summary>
    public GatePolicy For(string arm) => PerArm is not null && PerArm.TryGetValue(arm, out var own) ? own : this;

    public double GrowthOf(GateMetricKind kind) => kind switch
    {
        GateMetricKind.P50 => P50Growth,
        GateMetricKind.P99 => P99Growth,
        GateMetricKind.OpenP99 => OpenP99Growth,
        GateMetricKind.Rss => RssGrowth,
        _ => ThroughputGrowth,
    };

    /// <summary>The least growth, in points of the direct arm's figure, that counts for this metric.</summary>
    public double FloorOf(GateMetricKind kind) => kind switch
    {
        GateMetricKind.OpenP99 => OpenP99MinimumPoints,
        GateMetricKind.Rss => RssMinimumMiB,
        _ => MinimumPoints,
    };

    public string Describe() => string.Create(
        CultureInfo.InvariantCulture,
        $"a regression is overhead grown by more than {P50Growth:0.#%} (p50), {P99Growth:0.#%} (p99), {ThroughputGrowth:0.#%} (throughput) or {OpenP99Growth:0.#%} (open-loop p99) of the base build's, at least {MinimumPoints * 100:0.#} points ({OpenP99MinimumPoints * 100:0.#} for the open-loop p99), or memory grown by more than {RssGrowth:0.#%} and {RssMinimumMiB:0.#} MiB, lower quartiles of the repetitions compared by a one-sided bootstrap, p < {Alpha}")
        + DescribePerArm();

    /// <summary>The arms with allowances of their own, as "; arm: ..." clauses; empty when none has.</summary>
    public string DescribePerArm() => string.Concat((PerArm ?? new Dictionary<string, GatePolicy>()).Select(arm => string.Create(
        CultureInfo.InvariantCulture,
        $"; {arm.Key}: {arm.Value.P50Growth:0.#%} (p50), {arm.Value.P99Growth:0.#%} (p99), {arm.Value.ThroughputGrowth:0.#%} (throughput), {arm.Value.OpenP99Growth:0.#%} (open-loop p99)")));
}
