namespace Forwarder.Bench.Gate;

/// <summary>What a metric measures of a proxy arm against the direct arm of the same repetition.</summary>
internal enum GateMetricKind
{
    /// <summary>Median latency under the shared rate: proxy / direct.</summary>
    P50,

    /// <summary>99th percentile latency under the shared rate: proxy / direct.</summary>
    P99,

    /// <summary>Closed-loop throughput: direct / proxy (so, like latency, higher is worse).</summary>
    Throughput,

    /// <summary>99th percentile latency of the open loop at a fixed rate, from each request's intended start: proxy / direct. The metric that sees pauses.</summary>
    OpenP99,

    /// <summary>
    /// Resident memory of the arm's processes after the repetition's load, in MiB. No proxy costs
    /// none, so the figure is the overhead itself (the ratio is one plus it).
    /// </summary>
    Rss,
}

/// <summary>
/// A gated quantity: a cost ratio of a proxy arm to the direct arm measured in the same
/// repetition, so the machine's own speed cancels. The ratio minus one is the overhead the proxy
/// adds; thresholds are shares of that overhead.
/// </summary>
internal sealed record GateMetric(string Arm, GateMetricKind Kind)
{
    /// <summary>The proxy arms the gate measures, in report order.</summary>
    public static readonly IReadOnlyList<string> ProxyArms = ["forwarder", "forwarder-l7", "forwarder-link", "forwarder-h2"];

    /// <summary>The reference without a proxy: the HTTP/1.1 client straight to the HTTP/1.1 backend.</summary>
    public const string Direct = "direct";

    /// <summary>The reference of the HTTP/2 arm: the h2c client straight to the h2c backend, another protocol's cost.</summary>
    public const string DirectH2 = "direct-h2";

    /// <summary>The direct arm a proxy arm's ratios are taken against: the one that speaks its protocol.</summary>
    public static string DirectOf(string arm) => arm == "forwarder-h2" ? DirectH2 : Direct;

    public static bool IsDirect(string arm) => arm is Direct or DirectH2;

    /// <summary>Whether the arm's load is h2c (the HTTP/2 arm and its direct reference).</summary>
    public static bool IsHttp2(string arm) => arm is "forwarder-h2" or DirectH2;

    public static readonly IReadOnlyList<GateMetric> All =
        [.. ProxyArms.SelectMany(arm => Enum.GetValues<GateMetricKind>().Select(kind => new GateMetric(arm, kind)))];

    public string Name => $"{Arm} {Label}";

    public string Label => Kind switch
    {
        GateMetricKind.P50 => "p50 latency",
        GateMetricKind.P99 => "p99 latency",
        GateMetricKind.OpenP99 => "open-loop p99",
        GateMetricKind.Rss => "memory",
        _ => "throughput",
    };

    /// <summary>The cost ratio in every repetition that measured this metric of the arm and has its direct arm.</summary>
    public double[] Ratios(IReadOnlyList<GateSample> samples)
    {
        var direct = samples.Where(s => s.Arm == DirectOf(Arm)).ToDictionary(s => s.Rep);
        return [.. Measured(samples, direct.Keys.ToHashSet()).Select(s => Ratio(s, direct[s.Rep]))];
    }

    /// <summary>The repetitions <see cref="Ratios"/> covers, in its order.</summary>
    public int[] Reps(IReadOnlyList<GateSample> samples)
        => [.. Measured(samples, samples.Where(s => s.Arm == DirectOf(Arm)).Select(s => s.Rep).ToHashSet()).Select(s => s.Rep)];

    // Samples recorded before an arm or the memory figure existed (older calibration files) have none of them.
    private IEnumerable<GateSample> Measured(IReadOnlyList<GateSample> samples, HashSet<int> directReps)
        => samples.Where(s => s.Arm == Arm && directReps.Contains(s.Rep) && (Kind != GateMetricKind.Rss || s.RssMiB is not null)).OrderBy(s => s.Rep);

    private double Ratio(GateSample proxy, GateSample direct) => Kind switch
    {
        GateMetricKind.P50 => proxy.P50Us / direct.P50Us,
        GateMetricKind.P99 => proxy.P99Us / direct.P99Us,
        GateMetricKind.OpenP99 => proxy.OpenP99Us / direct.OpenP99Us,
        GateMetricKind.Rss => 1 + proxy.RssMiB!.Value,
        _ => direct.MaxRps / proxy.MaxRps,
    };
}
