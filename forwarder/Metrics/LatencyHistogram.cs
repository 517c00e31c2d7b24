namespace Forwarder.Metrics;

/// <summary>A fixed-bucket latency histogram in the shape Prometheus expects; lock-free to record.</summary>
internal sealed class LatencyHistogram
{
    /// <summary>Upper bounds in seconds, from half a millisecond (loopback) to ten seconds (a far, slow peer).</summary>
    public static readonly double[] Bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly long[] _counts = new long[Bounds.Length + 1];
    private long _sumMicroseconds;

    public void Record(TimeSpan elapsed)
    {
        var seconds = elapsed.TotalSeconds;
        var bucket = 0;
        while (bucket < Bounds.Length && seconds > Bounds[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _counts[bucket]);
        Interlocked.Add(ref _sumMicroseconds, (long)(elapsed.Ticks / 10.0));
    }

    /// <summary>Cumulative count of observations at or below each bound, then the total.</summary>
    public long[] CumulativeCounts()
    {
        var cumulative = new long[_counts.Length];
        long running = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            running += Volatile.Read(ref _counts[i]);
            cumulative[i] = running;
        }

        return cumulative;
    }

    public double SumSeconds => Volatile.Read(ref _sumMicroseconds) / 1_000_000.0;
}
