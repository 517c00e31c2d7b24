namespace Forwarder.Runtime;

/// <summary>
/// Decides when a process that went quiet after doing some work lets go again of what the work
/// left resident (what <see cref="MemoryReclaimer.ReleaseStartupMemory"/> lets go at start: the
/// gen0 memory its allocations touched, the executable's pages it ran or read once). Quiet means
/// the last sample allocated next to nothing and forwarded no byte (the splice and direct-send paths
/// move gigabytes allocating almost nothing, so allocation alone would call a bulk flow quiet);
/// work means enough allocated since the last release; and releases are spaced, because the code
/// the next work runs comes back as minor faults. Idle loops (timers, an admin scrape now and then)
/// allocate a few KB a minute.
/// </summary>
internal sealed class SettlePolicy(long minWorkBytes, long maxQuietBytes, TimeSpan minInterval)
{
    public const long DefaultMinWorkBytes = 128 * 1024;
    public const long DefaultMaxQuietBytes = 64 * 1024;

    public static readonly TimeSpan DefaultMinInterval = TimeSpan.FromSeconds(30);

    private long _releasedAt = -1;
    private long _lastSample = -1;
    private long _lastForwarded;
    private long _lastRelease = long.MinValue;

    public SettlePolicy()
        : this(DefaultMinWorkBytes, DefaultMaxQuietBytes, DefaultMinInterval)
    {
    }

    /// <summary>The start-up release: work is counted from here, and the interval from the first settle.</summary>
    public void Begin(long allocatedBytes) => _releasedAt = _lastSample = allocatedBytes;

    /// <summary>
    /// One sample of the bytes allocated and the bytes forwarded since start, with a timestamp in
    /// <paramref name="frequency"/> ticks per second.
    /// </summary>
    public bool ShouldSettle(long allocatedBytes, long forwardedBytes, long timestamp, long frequency)
    {
        var quiet = _lastSample >= 0 && allocatedBytes - _lastSample <= maxQuietBytes && forwardedBytes == _lastForwarded;
        _lastSample = allocatedBytes;
        _lastForwarded = forwardedBytes;
        return quiet
            && allocatedBytes - _releasedAt >= minWorkBytes
            && (_lastRelease == long.MinValue || timestamp - _lastRelease >= (long)(minInterval.TotalSeconds * frequency));
    }

    /// <summary>After a release (a settle, or a reclaim's collection): work is counted from here.</summary>
    public void Released(long allocatedBytes, long timestamp, bool settled)
    {
        _releasedAt = _lastSample = allocatedBytes;
        if (settled)
        {
            _lastRelease = timestamp;
        }
    }
}
