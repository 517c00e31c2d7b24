namespace Forwarder.Runtime;

/// <summary>
/// Decides when memory a peak of connections left behind is worth giving back. The GC keeps what
/// it once committed (and runs no collection at all when nothing allocates, as with connections
/// that closed), so after a peak the process would stay at its peak size. A reclaim, a full
/// compacting collection that also decommits, costs a pause, so it runs only when the process has
/// grown by the minimum growth since the last one (or the block pools let that much go idle since:
/// blocks still in flight at one reclaim come back to the pools later, and only a collection turns
/// them into free memory), the open connections have fallen to half their peak or less, and the
/// minimum interval has passed: a few times an hour under a load that rises and falls, never while
/// connections keep piling up.
/// </summary>
internal sealed class MemoryReclaimPolicy(long minGrowthBytes, TimeSpan minInterval)
{
    private long _baselineBytes = -1;
    private int _peakConnections;
    private long _lastReclaim = long.MinValue;
    private long _releasedBytes;

    public MemoryReclaimPolicy()
        : this(DefaultMinGrowthBytes, DefaultMinInterval)
    {
    }

    public const long DefaultMinGrowthBytes = 16 * 1024 * 1024;

    public static readonly TimeSpan DefaultMinInterval = TimeSpan.FromSeconds(20);

    /// <summary>The bytes memory takes at start, before any connection: growth is counted from here.</summary>
    public void Begin(long bytes) => _baselineBytes = bytes;

    /// <summary>
    /// One sample: the open connections, the bytes memory takes, the bytes of pooled blocks let go
    /// since the last sample, and a timestamp in <paramref name="frequency"/> ticks per second.
    /// </summary>
    public bool ShouldReclaim(int connections, long bytes, long releasedBytes, long timestamp, long frequency)
    {
        _releasedBytes += releasedBytes;
        if (_baselineBytes < 0)
        {
            _baselineBytes = bytes;
        }

        _peakConnections = Math.Max(_peakConnections, connections);
        return (bytes - _baselineBytes >= minGrowthBytes || _releasedBytes >= minGrowthBytes)
            && connections <= _peakConnections / 2
            && (_lastReclaim == long.MinValue || timestamp - _lastReclaim >= (long)(minInterval.TotalSeconds * frequency));
    }

    /// <summary>After a reclaim: what is left is the new baseline, and the peak starts over.</summary>
    public void Reclaimed(int connections, long bytes, long timestamp)
    {
        _baselineBytes = bytes;
        _peakConnections = connections;
        _lastReclaim = timestamp;
        _releasedBytes = 0;
    }
}
