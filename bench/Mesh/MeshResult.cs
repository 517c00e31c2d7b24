using Forwarder.Bench.Compare;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Mesh;

/// <summary>One arm at one rate in one repetition: the client's stats and what all the arm's proxies used.</summary>
/// <param name="Rate">Open-loop rate; null for closed loop.</param>
/// <param name="CpuSeconds">CPU all proxies of the arm used during the measured window; null with no proxies.</param>
internal sealed record MeshRun(CompareProtocol Protocol, string Arm, double? Rate, int Rep, ScenarioStats Stats, double? CpuSeconds, long? PeakRssBytes, long? MeanRssBytes)
{
    /// <summary>Proxy CPU per thousand requests, in milliseconds.</summary>
    public double? CpuMsPerThousand => CpuSeconds is { } cpu && Stats.Count > 0 ? cpu * 1_000_000 / Stats.Count : null;
}

/// <summary>An arm's data plane at rest: how many proxy processes it runs and their resident memory before any load.</summary>
internal sealed record MeshFootprint(CompareProtocol Protocol, string Arm, int Proxies, long IdleRssBytes);

/// <summary>A whole mesh experiment.</summary>
internal sealed record MeshResult(
    MeshOptions Options,
    IReadOnlyList<MeshRun> Runs,
    IReadOnlyList<MeshFootprint> Footprints,
    IReadOnlyList<string> Skipped,
    IReadOnlyDictionary<string, string> Versions,
    string Machine,
    DateTimeOffset StartedAt)
{
    public IReadOnlyList<MeshRun> Of(CompareProtocol protocol, string arm, double? rate)
        => [.. Runs.Where(r => r.Protocol == protocol && r.Arm == arm && r.Rate == rate)];

    /// <summary>Runs with failed or unfinished requests, or short of their rate.</summary>
    public IReadOnlyList<MeshRun> Unclean => [.. Runs.Where(r => !r.Stats.Clean)];

    public IEnumerable<string> ArmsOf(CompareProtocol protocol) => Runs.Where(r => r.Protocol == protocol).Select(r => r.Arm).Distinct();
}
