using Forwarder.Bench.Histograms;
using Forwarder.Bench.Scenarios;
using HdrHistogram;

namespace Forwarder.Bench.Compare;

/// <summary>One arm at one rate in one repetition: the load's stats and the proxy's resource use.</summary>
/// <param name="Rate">Open-loop rate; null for closed loop.</param>
/// <param name="CpuSeconds">CPU the proxy's processes used during the run; null for direct.</param>
/// <param name="Resources">The proxy's CPU and memory sampled over the run; null for direct.</param>
internal sealed record ArmRun(string Arm, double? Rate, int Rep, ScenarioStats Stats, double? CpuSeconds, long? PeakRssBytes, long? MeanRssBytes, IReadOnlyList<ResourceSample>? Resources = null)
{
    /// <summary>Proxy CPU per thousand requests, in milliseconds: the cost that stays comparable across rates.</summary>
    public double? CpuMsPerThousand => CpuSeconds is { } cpu && Stats.Count > 0 ? cpu * 1_000_000 / Stats.Count : null;
}

/// <summary>A whole comparison: every run, what was skipped and why, and where it ran.</summary>
internal sealed record CompareResult(
    CompareOptions Options,
    IReadOnlyList<string> Arms,
    IReadOnlyList<ArmRun> Runs,
    IReadOnlyList<string> Skipped,
    IReadOnlyDictionary<string, string> Versions,
    string Machine,
    DateTimeOffset StartedAt)
{
    /// <summary>The runs of one arm at one rate, across repetitions.</summary>
    public IReadOnlyList<ArmRun> Of(string arm, double? rate) => [.. Runs.Where(r => r.Arm == arm && r.Rate == rate)];

    /// <summary>Runs with failed or unfinished requests, or short of their rate: their figures do not describe a working arm.</summary>
    public IReadOnlyList<ArmRun> Unclean => [.. Runs.Where(r => !r.Stats.Clean)];

    /// <summary>All repetitions' latencies of one arm at one rate, merged.</summary>
    public HistogramBase MergedLatency(string arm, double? rate)
    {
        var merged = InvocationStats.NewHistogram();
        foreach (var run in Of(arm, rate))
        {
            merged.Add(run.Stats.Latency);
        }

        return merged;
    }
}
