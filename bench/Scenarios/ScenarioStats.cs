using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>A scenario's results over its measured window (warm-up excluded).</summary>
/// <param name="gracePeriod">How long the run waited past its end for invocations still due or in flight.</param>
internal sealed class ScenarioStats(string name, TimeSpan duration, double? requestedRate, TimeSpan gracePeriod, InvocationStats totals, IReadOnlyList<ThresholdResult> thresholds)
{
    /// <summary>An open-loop run that completed less than this share of its requested rate did not measure what was asked, and fails.</summary>
    public const double MinimumAchievedShare = 0.99;

    public string Name { get; } = name;

    /// <summary>Length of the measured window.</summary>
    public TimeSpan Duration { get; } = duration;

    /// <summary>Invocations a second the simulations asked for, on average; null for closed loop.</summary>
    public double? RequestedRate { get; } = requestedRate;

    public TimeSpan GracePeriod { get; } = gracePeriod;

    public long Ok => totals.Ok;

    /// <summary>Failed invocations, timeouts and unfinished ones included.</summary>
    public long Failed => totals.Failed;

    /// <summary>Timed out, unfinished ones included.</summary>
    public long TimedOut => totals.TimedOut;

    /// <summary>Due in the measured window but not started, or not finished, when the run stopped waiting (its end plus the grace period).</summary>
    public long Unfinished => totals.Unfinished;

    /// <summary>Every invocation the run owed: finished or not.</summary>
    public long Count => totals.Ok + totals.Failed;

    /// <summary>
    /// Invocations that came back, well or not, without timing out, by the end of the measured
    /// window. Those finishing in the grace period count in the latencies but not here: a target
    /// that works off a backlog after the end did not carry the rate during it.
    /// </summary>
    public long Completed => totals.CompletedInWindow;

    public long Bytes => totals.Bytes;

    public HistogramBase Latency => totals.Latency;

    public HistogramBase UncorrectedLatency => totals.Uncorrected;

    /// <summary>Invocations completed in each whole second of the measured window.</summary>
    public IReadOnlyList<long> CompletedPerSecond => totals.CompletedPerSecond;

    public IReadOnlyDictionary<int, long> StatusCodes => totals.StatusCodes;

    public IReadOnlyDictionary<string, long> Failures => totals.Failures;

    public IReadOnlyDictionary<string, StepStats> Steps => totals.Steps;

    public IReadOnlyList<ThresholdResult> Thresholds { get; } = thresholds;

    /// <summary>The thresholds held and, in open loop, the requested rate was achieved.</summary>
    public bool Passed => RateAchieved && Thresholds.All(t => t.Passed);

    /// <summary><see cref="Completed"/> invocations per second of the measured window (timeouts and unfinished ones do not count, as in wrk).</summary>
    public double RequestsPerSecond => Duration > TimeSpan.Zero ? Completed / Duration.TotalSeconds : 0;

    /// <summary>The share of the requested rate that completed; null in closed loop.</summary>
    public double? AchievedShare => RequestedRate is { } rate && rate > 0 ? RequestsPerSecond / rate : null;

    /// <summary>False when an open-loop run completed under <see cref="MinimumAchievedShare"/> of its requested rate.</summary>
    public bool RateAchieved => AchievedShare is not { } share || share >= MinimumAchievedShare;

    /// <summary>
    /// Every invocation came back well and the requested rate, if any, was achieved. Figures from a
    /// run that is not clean describe a failing target or a generator that fell behind, and a
    /// comparison built on them says so.
    /// </summary>
    public bool Clean => Failed == 0 && RateAchieved;

    /// <summary>What keeps the run from being clean, in a few words; empty when it is clean.</summary>
    public string Problems
    {
        get
        {
            List<string> problems = [];
            if (Failed > 0)
            {
                problems.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Failed} of {Count} failed ({TimedOut} timeouts, {Unfinished} unfinished)"));
            }

            if (!RateAchieved)
            {
                problems.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{AchievedShare:0.0%} of the requested rate"));
            }

            return string.Join(", ", problems);
        }
    }

    public double ErrorRate => Count == 0 ? 0 : Failed / (double)Count;

    public double BytesPerSecond => Duration > TimeSpan.Zero ? Bytes / Duration.TotalSeconds : 0;

    public TimeSpan LatencyAtPercentile(double percentile)
        => Latency.TotalCount == 0 ? TimeSpan.Zero : TimeSpan.FromMicroseconds(Latency.ValueAt(percentile));

    public ScenarioStats WithThresholds(IReadOnlyList<ThresholdResult> results) => new(Name, Duration, RequestedRate, GracePeriod, totals, results);
}
