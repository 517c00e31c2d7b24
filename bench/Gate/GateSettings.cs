namespace Forwarder.Bench.Gate;

/// <summary>
/// How the gate measures. After a session warm-up (so tiered compilation has settled in every
/// process), each repetition runs every arm alone, in turn: a closed loop on
/// <see cref="Connections"/> connections for latency (one: each request's time is the hops'
/// work and nothing queued), then on <see cref="MaxConnections"/> for throughput. A baseline keeps
/// the settings it was recorded with and a comparison reuses them: overheads only compare at the
/// same load.
/// </summary>
/// <param name="Backend">nginx (1 worker) or builtin.</param>
/// <param name="Slices">The latency run of each arm is cut into this many slices, the arms taking turns.</param>
internal sealed record GateSettings(
    int Connections,
    TimeSpan Duration,
    int Slices,
    int MaxConnections,
    TimeSpan MaxDuration,
    TimeSpan Warmup,
    int WarmupReps,
    string Backend)
{
    public static GateSettings Default(string backend) => new(1, TimeSpan.FromSeconds(2), 20, 32, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(250), 3, backend);

    /// <summary>Wall time of one repetition for the arms given.</summary>
    public TimeSpan RepTime(int arms) => (Duration + MaxDuration + Warmup) * arms;
}

/// <summary>One arm in one repetition: latency percentiles and throughput.</summary>
/// <param name="Arm">direct, forwarder or forwarder-l7 (an injected build reports as the arm it stands for).</param>
internal sealed record GateSample(string Arm, int Rep, double P50Us, double P99Us, double MaxRps);
