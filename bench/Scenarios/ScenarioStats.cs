using Forwarder.Bench.Histograms;

namespace Forwarder.Bench.Scenarios;

/// <summary>A scenario's results over its measured window (warm-up excluded).</summary>
internal sealed class ScenarioStats(string name, TimeSpan duration, double? requestedRate, InvocationStats totals, IReadOnlyList<ThresholdResult> thresholds)
{
    public string Name { get; } = name;

    /// <summary>Length of the measured window.</summary>
    public TimeSpan Duration { get; } = duration;

    /// <summary>Invocations a second the simulations asked for, on average; null for closed loop.</summary>
    public double? RequestedRate { get; } = requestedRate;

    public long Ok => totals.Ok;

    public long Failed => totals.Failed;

    public long TimedOut => totals.TimedOut;

    public long Count => totals.Ok + totals.Failed;

    public long Bytes => totals.Bytes;

    public HdrHistogram Latency => totals.Latency;

    public HdrHistogram UncorrectedLatency => totals.Uncorrected;

    public IReadOnlyDictionary<int, long> StatusCodes => totals.StatusCodes;

    public IReadOnlyDictionary<string, long> Failures => totals.Failures;

    public IReadOnlyDictionary<string, StepStats> Steps => totals.Steps;

    public IReadOnlyList<ThresholdResult> Thresholds { get; } = thresholds;

    public bool Passed => Thresholds.All(t => t.Passed);

    public double RequestsPerSecond => Duration > TimeSpan.Zero ? Count / Duration.TotalSeconds : 0;

    public double ErrorRate => Count == 0 ? 0 : Failed / (double)Count;

    public double BytesPerSecond => Duration > TimeSpan.Zero ? Bytes / Duration.TotalSeconds : 0;

    public TimeSpan LatencyAtPercentile(double percentile)
        => Latency.TotalCount == 0 ? TimeSpan.Zero : TimeSpan.FromMicroseconds(Latency.GetValueAtPercentile(percentile));

    public ScenarioStats WithThresholds(IReadOnlyList<ThresholdResult> results) => new(Name, Duration, RequestedRate, totals, results);
}
