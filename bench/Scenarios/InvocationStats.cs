using Forwarder.Bench.Histograms;
using HdrHistogram;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// What a worker measured: one worker records (under its context's gate, which the runner closes
/// when it stops waiting), and the runner merges all workers' at the end. Latencies are kept in
/// microseconds, from 1 µs to an hour at 3 significant digits.
/// </summary>
/// <param name="trackIntervals">Also record the corrected latency into <see cref="Interval"/>, which the runner swaps out every reporting interval.</param>
internal sealed class InvocationStats(bool trackIntervals = false)
{
    public const long HighestMicroseconds = 3_600_000_000;

    /// <summary>The failure reason unfinished invocations are counted under.</summary>
    public const string UnfinishedMessage = "unfinished when the run ended";

    private readonly StatusCounts _statusCodes = new();
    private Dictionary<string, long>? _failures;
    private Dictionary<string, StepStats>? _steps;
    private List<long>? _completedPerSecond;

    /// <summary>From each invocation's intended start: coordinated omission corrected (equal to <see cref="Uncorrected"/> in closed loop).</summary>
    public LongHistogram Latency { get; } = NewHistogram();

    /// <summary>From each invocation's actual start, as a closed-loop tool would see it.</summary>
    public LongHistogram Uncorrected { get; } = NewHistogram();

    /// <summary>What <see cref="Latency"/> got since the runner last swapped this out; null unless intervals are tracked.</summary>
    public LongHistogram? Interval { get; private set; } = trackIntervals ? NewHistogram() : null;

    public long Ok { get; private set; }

    public long Failed { get; private set; }

    /// <summary>Timed out, unfinished ones included.</summary>
    public long TimedOut { get; private set; }

    /// <summary>Not started, or still running, when the run stopped waiting: counted as failed timeouts too.</summary>
    public long Unfinished { get; private set; }

    /// <summary>Came back (well or not) without timing out, by the end of the measured window: what rates count.</summary>
    public long CompletedInWindow { get; private set; }

    public long Bytes { get; private set; }

    public IReadOnlyDictionary<int, long> StatusCodes => _statusCodes.ToDictionary();

    public IReadOnlyDictionary<string, long> Failures => _failures ?? [];

    public IReadOnlyDictionary<string, StepStats> Steps => _steps ?? [];

    /// <summary>Invocations completed in each whole second of the measured window: throughput over time.</summary>
    public IReadOnlyList<long> CompletedPerSecond => _completedPerSecond ?? [];

    public static LongHistogram NewHistogram() => new(1, HighestMicroseconds, 3);

    /// <summary>Puts <paramref name="empty"/> in place of <see cref="Interval"/> and returns what it held.</summary>
    public LongHistogram SwapInterval(LongHistogram empty)
    {
        var taken = Interval ?? throw new InvalidOperationException("Intervals are not tracked.");
        Interval = empty;
        return taken;
    }

    public static long ToMicroseconds(TimeSpan elapsed) => Math.Clamp((long)(elapsed.Ticks / (double)TimeSpan.TicksPerMicrosecond), 1, HighestMicroseconds);

    /// <summary>Records one invocation; <paramref name="inWindow"/>: it ended by the end of the measured window (not in the grace period after it).</summary>
    public void Record(Response response, TimeSpan latency, TimeSpan uncorrected, bool timedOut, bool inWindow)
    {
        RecordLatency(latency);
        Uncorrected.RecordValue(ToMicroseconds(uncorrected));
        Bytes += response.SizeBytes;
        CompletedInWindow += inWindow && !timedOut ? 1 : 0;
        _statusCodes.Count(response.StatusCode, 1);
        if (response.IsOk)
        {
            Ok++;
            return;
        }

        Failed++;
        TimedOut += timedOut ? 1 : 0;
        CountFailure(response.Message ?? "failed", 1);
    }

    /// <summary>
    /// An invocation the run gave up on. Its latency counts from its intended start to when the run
    /// stopped waiting (a lower bound of what it would have been), as wrk2 counts every request from
    /// its intended start; from the actual start too when it had started.
    /// </summary>
    public void RecordUnfinished(TimeSpan latency, TimeSpan? uncorrected)
    {
        RecordLatency(latency);
        if (uncorrected is { } sinceStart)
        {
            Uncorrected.RecordValue(ToMicroseconds(sinceStart));
        }

        Failed++;
        TimedOut++;
        Unfinished++;
        CountFailure(UnfinishedMessage, 1);
    }

    private void RecordLatency(TimeSpan latency)
    {
        var value = ToMicroseconds(latency);
        Latency.RecordValue(value);
        Interval?.RecordValue(value);
    }

    private void CountFailure(string message, long count)
    {
        _failures ??= new(StringComparer.Ordinal);
        _failures[message] = _failures.GetValueOrDefault(message) + count;
    }

    public StepStats Step(string name)
    {
        _steps ??= new(StringComparer.Ordinal);
        if (!_steps.TryGetValue(name, out var step))
        {
            _steps[name] = step = new StepStats(name);
        }

        return step;
    }

    /// <summary>Counts <paramref name="count"/> completions in second <paramref name="second"/> of the measured window.</summary>
    public void CountCompleted(int second, long count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(second);
        _completedPerSecond ??= [];
        while (_completedPerSecond.Count <= second)
        {
            _completedPerSecond.Add(0);
        }

        _completedPerSecond[second] += count;
    }

    public void Add(InvocationStats other)
    {
        for (var second = 0; second < other.CompletedPerSecond.Count; second++)
        {
            CountCompleted(second, other.CompletedPerSecond[second]);
        }

        Latency.Add(other.Latency);
        Uncorrected.Add(other.Uncorrected);
        Ok += other.Ok;
        Failed += other.Failed;
        TimedOut += other.TimedOut;
        Unfinished += other.Unfinished;
        CompletedInWindow += other.CompletedInWindow;
        Bytes += other.Bytes;
        _statusCodes.Add(other._statusCodes);

        foreach (var (message, count) in other.Failures)
        {
            CountFailure(message, count);
        }

        foreach (var (name, step) in other.Steps)
        {
            Step(name).Add(step);
        }
    }
}

/// <summary>One named step's outcomes, status codes and latency, over all the workers that ran it.</summary>
public sealed class StepStats
{
    private readonly StatusCounts _statusCodes = new();

    internal StepStats(string name) => Name = name;

    /// <summary>The name the step was run under.</summary>
    public string Name { get; }

    /// <summary>The step's own latency in microseconds (from its start, not the invocation's).</summary>
    public HistogramBase Latency { get; } = InvocationStats.NewHistogram();

    /// <summary>Runs that returned <see cref="Response.Ok"/>.</summary>
    public long Ok { get; private set; }

    /// <summary>Runs that failed or threw, unfinished ones included.</summary>
    public long Failed { get; private set; }

    /// <summary>Still running when the run stopped waiting (counted in <see cref="Failed"/> too).</summary>
    public long Unfinished { get; private set; }

    /// <summary>Bytes the step's responses reported.</summary>
    public long Bytes { get; private set; }

    /// <summary>Every run of the step, failed and unfinished ones included.</summary>
    public long Count => Ok + Failed;

    /// <summary>Failed runs as a fraction of all (0 when there were none).</summary>
    public double ErrorRate => Count == 0 ? 0 : Failed / (double)Count;

    /// <summary>How many runs returned each status code.</summary>
    public IReadOnlyDictionary<int, long> StatusCodes => _statusCodes.ToDictionary();

    /// <summary>The step's latency at <paramref name="percentile"/> (0 to 100); zero when nothing was measured.</summary>
    public TimeSpan LatencyAtPercentile(double percentile)
        => Latency.TotalCount == 0 ? TimeSpan.Zero : TimeSpan.FromMicroseconds(Latency.ValueAt(percentile));

    internal void RecordUnfinished(TimeSpan latency)
    {
        Latency.RecordValue(InvocationStats.ToMicroseconds(latency));
        Failed++;
        Unfinished++;
    }

    internal void Record(Response response, TimeSpan latency)
    {
        Latency.RecordValue(InvocationStats.ToMicroseconds(latency));
        Bytes += response.SizeBytes;
        _statusCodes.Count(response.StatusCode, 1);
        if (response.IsOk)
        {
            Ok++;
        }
        else
        {
            Failed++;
        }
    }

    internal void Add(StepStats other)
    {
        Latency.Add(other.Latency);
        Ok += other.Ok;
        Failed += other.Failed;
        Unfinished += other.Unfinished;
        Bytes += other.Bytes;
        _statusCodes.Add(other._statusCodes);
    }
}

/// <summary>Counts by status code: an array for the three-digit ones (HTTP's), a dictionary for the rest.</summary>
internal sealed class StatusCounts
{
    private readonly long[] _common = new long[600];
    private Dictionary<int, long>? _other;

    public void Count(int? status, long count)
    {
        if (status is not { } code)
        {
            return;
        }

        if ((uint)code < (uint)_common.Length)
        {
            _common[code] += count;
            return;
        }

        _other ??= [];
        _other[code] = _other.GetValueOrDefault(code) + count;
    }

    public void Add(StatusCounts other)
    {
        for (var code = 0; code < _common.Length; code++)
        {
            _common[code] += other._common[code];
        }

        foreach (var (code, count) in other._other ?? [])
        {
            Count(code, count);
        }
    }

    public Dictionary<int, long> ToDictionary()
    {
        var codes = new Dictionary<int, long>(_other ?? []);
        for (var code = 0; code < _common.Length; code++)
        {
            if (_common[code] > 0)
            {
                codes[code] = _common[code];
            }
        }

        return codes;
    }
}
