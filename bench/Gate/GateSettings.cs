namespace Forwarder.Bench.Gate;

/// <summary>
/// How the gate measures. After a session warm-up (so tiered compilation has settled in every
/// process), each repetition runs every arm alone, in turn: a closed loop on
/// <see cref="Connections"/> connections for latency (one: each request's time is the hops'
/// work and nothing queued), then on <see cref="MaxConnections"/> for throughput, then an open
/// loop at <see cref="OpenRate"/> requests a second. The closed loops cannot see a pause: the one
/// request in flight waits it out and the next starts after it, so a 5 ms freeze every 100 ms
/// costs one slow request in hundreds. The open loop keeps sending on schedule and counts each
/// request from when it was due, so every request that fell in the freeze shows its wait.
/// </summary>
/// <param name="Backend">nginx (1 worker) or builtin.</param>
/// <param name="Slices">The latency run of each arm is cut into this many slices, the arms taking turns.</param>
/// <param name="OpenRate">Requests a second of the open-loop run.</param>
/// <param name="OpenDuration">Measured time of each open-loop run.</param>
/// <param name="Arms">The proxy arms each build runs; null for all of <see cref="GateMetric.ProxyArms"/>.</param>
internal sealed record GateSettings(
    int Connections,
    TimeSpan Duration,
    int Slices,
    int MaxConnections,
    TimeSpan MaxDuration,
    TimeSpan Warmup,
    int WarmupReps,
    string Backend,
    double OpenRate,
    TimeSpan OpenDuration,
    IReadOnlyList<string>? Arms = null)
{
    /// <summary>Connections the open loop may hold at once: enough that requests due during a pause queue up rather than wait for a free one.</summary>
    public const int OpenConnections = 16;

    public static GateSettings Default(string backend) => new(1, TimeSpan.FromSeconds(1), 10, 32, TimeSpan.FromSeconds(0.5), TimeSpan.FromMilliseconds(250), 2, backend, 2000, TimeSpan.FromSeconds(1));

    /// <summary>The proxy arms each build runs, in report order.</summary>
    public IReadOnlyList<string> ProxyArms => Arms ?? GateMetric.ProxyArms;

    /// <summary>The direct arms the proxy arms are measured against: HTTP/1.1 first, then h2c if an arm speaks it.</summary>
    public IReadOnlyList<string> DirectArms => [.. ProxyArms.Select(GateMetric.DirectOf).Distinct().Order(StringComparer.Ordinal)];

    /// <summary>Wall time of one repetition for the arms given.</summary>
    public TimeSpan RepTime(int arms) => (Duration + MaxDuration + Warmup + OpenDuration) * arms;
}

/// <summary>The gate's calibrated run length (perf-reports/gate-calibration).</summary>
internal static class GateDefaults
{
    /// <summary>Measured repetitions of a gate run.</summary>
    public const int Reps = 8;
}

/// <summary>One arm in one repetition: latency percentiles, throughput, the open loop's p99 and the proxies' memory.</summary>
/// <param name="Arm">direct, direct-h2, forwarder, forwarder-l7, forwarder-link or forwarder-h2 (each build's arms report under these names).</param>
/// <param name="OpenP99Us">99th percentile of the open-loop run, counted from each request's intended start.</param>
/// <param name="RssMiB">Resident memory of the arm's processes after the repetition; null for the direct arm and in samples recorded before it was measured.</param>
internal sealed record GateSample(string Arm, int Rep, double P50Us, double P99Us, double MaxRps, double OpenP99Us, double? RssMiB = null);
