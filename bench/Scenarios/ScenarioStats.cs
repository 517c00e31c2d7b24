using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// A scenario's results over its measured window (warm-up excluded): at the end of the run, or
/// so far (<see cref="IsFinal"/> false) in the snapshots taken at each reporting interval.
/// Latencies are in microseconds.
/// </summary>
public sealed class ScenarioStats
{
    private readonly InvocationStats _totals;

    internal ScenarioStats(string name, TimeSpan duration, double? requestedRate, TimeSpan gracePeriod, InvocationStats totals, IReadOnlyList<ThresholdResult> thresholds, ThresholdBreach? abort = null, bool isFinal = true)
    {
        Name = name;
        Duration = duration;
        RequestedRate = requestedRate;
        GracePeriod = gracePeriod;
        _totals = totals;
        Thresholds = thresholds;
        Abort = abort;
        IsFinal = isFinal;
    }

    /// <summary>An open-loop run that completed less than this share of its requested rate did not measure what was asked, and fails.</summary>
    public const double MinimumAchievedShare = 0.99;

    /// <summary>The scenario's name.</summary>
    public string Name { get; }

    /// <summary>Length of the measured window.</summary>
    public TimeSpan Duration { get; }

    /// <summary>Invocations a second the simulations asked for, on average; null for closed loop.</summary>
    public double? RequestedRate { get; }

    /// <summary>How long the run waited past its end for invocations still due or in flight.</summary>
    public TimeSpan GracePeriod { get; }

    /// <summary>False in a snapshot taken while the run goes.</summary>
    public bool IsFinal { get; }

    /// <summary>The threshold whose break aborted the run early, or null when it ran its course.</summary>
    public ThresholdBreach? Abort { get; }

    /// <summary>Invocations that returned <see cref="Response.Ok"/>.</summary>
    public long Ok => _totals.Ok;

    /// <summary>Failed invocations, timeouts and unfinished ones included.</summary>
    public long Failed => _totals.Failed;

    /// <summary>Timed out, unfinished ones included.</summary>
    public long TimedOut => _totals.TimedOut;

    /// <summary>Due in the measured window but not started, or not finished, when the run stopped waiting (its end plus the grace period).</summary>
    public long Unfinished => _totals.Unfinished;

    /// <summary>Every invocation the run owed: finished or not.</summary>
    public long Count => _totals.Ok + _totals.Failed;

    /// <summary>
    /// Invocations that came back, well or not, without timing out, by the end of the measured
    /// window. Those finishing in the grace period count in the latencies but not here: a target
    /// that works off a backlog after the end did not carry the rate during it.
    /// </summary>
    public long Completed => _totals.CompletedInWindow;

    /// <summary>Bytes the responses reported.</summary>
    public long Bytes => _totals.Bytes;

    /// <summary>Invocation latency from each intended start (corrected for coordinated omission; the same as <see cref="UncorrectedLatency"/> in closed loop).</summary>
    public HistogramBase Latency => _totals.Latency;

    /// <summary>Invocation latency from each actual start, as a closed-loop tool would see it.</summary>
    public HistogramBase UncorrectedLatency => _totals.Uncorrected;

    /// <summary>Invocations completed in each whole second of the measured window.</summary>
    public IReadOnlyList<long> CompletedPerSecond => _totals.CompletedPerSecond;

    /// <summary>How many invocations returned each status code.</summary>
    public IReadOnlyDictionary<int, long> StatusCodes => _totals.StatusCodes;

    /// <summary>Failed invocations by message.</summary>
    public IReadOnlyDictionary<string, long> Failures => _totals.Failures;

    /// <summary>Each step's stats, by name.</summary>
    public IReadOnlyDictionary<string, StepStats> Steps => _totals.Steps;

    /// <summary>How each threshold fared (empty in snapshots).</summary>
    public IReadOnlyList<ThresholdResult> Thresholds { get; }

    /// <summary>The run was not aborted, the thresholds held and, in open loop, the requested rate was achieved.</summary>
    public bool Passed => Abort is null && RateAchieved && Thresholds.All(t => t.Passed);

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

    /// <summary>Failed invocations as a fraction of all (0 when there were none).</summary>
    public double ErrorRate => Count == 0 ? 0 : Failed / (double)Count;

    /// <summary>Reported bytes per second of the measured window.</summary>
    public double BytesPerSecond => Duration > TimeSpan.Zero ? Bytes / Duration.TotalSeconds : 0;

    /// <summary>The latency at <paramref name="percentile"/> (0 to 100); zero when nothing was measured.</summary>
    public TimeSpan LatencyAtPercentile(double percentile)
        => Latency.TotalCount == 0 ? TimeSpan.Zero : TimeSpan.FromMicroseconds(Latency.ValueAt(percentile));

    internal ScenarioStats WithThresholds(IReadOnlyList<ThresholdResult> results) => new(Name, Duration, RequestedRate, GracePeriod, _totals, results, Abort, IsFinal);
}
