using Forwarder.Configuration;
using Forwarder.Transports.Mux;

namespace Forwarder.Relay;

/// <summary>
/// What the relay knows of one node name: its current session while it is registered, and what
/// outlives sessions so a node cannot escape its limits by reconnecting (its stream count, its
/// bandwidth budget, its counters).
/// </summary>
internal sealed class RelayNode(string name, RelayLimits limits)
{
    private YamuxSession? _session;
    private long _streamsActive;
    private long _streamsOpened;
    private long _streamsRefused;
    private long _bytesFrom;
    private long _bytesTo;
    private long _throttledMicroseconds;
    private long _splicesActive;
    private long _splices;
    private long _introductionsLimited;
    private long _introductionsFarLimited;

    public string Name { get; } = name;

    /// <summary>Bandwidth this node may push through the relay; null when unlimited.</summary>
    public TokenBucket? Budget { get; } = limits.BytesPerSecondPerNode is { } rate ? new TokenBucket(rate) : null;

    /// <summary>
    /// Introductions for hole punching this node may ask for, per second (and at once): each has
    /// the far node open sockets and probe for seconds, so a node cannot have the relay make
    /// another answer them without end.
    /// </summary>
    public TokenBucket Introductions { get; } = new(IntroductionsPerSecond);

    public const int IntroductionsPerSecond = 10;

    /// <summary>The registered session; null while the node is not registered.</summary>
    public YamuxSession? Session => Volatile.Read(ref _session) is { Completion.IsCompleted: false } session ? session : null;

    public long StreamsActive => Volatile.Read(ref _streamsActive);

    /// <summary>Streams this node opened through the relay that reached the far node.</summary>
    public long StreamsOpened => Volatile.Read(ref _streamsOpened);

    /// <summary>Streams this node asked for that were refused (limit, unknown node, far node's refusal).</summary>
    public long StreamsRefused => Volatile.Read(ref _streamsRefused);

    public long BytesFrom => Volatile.Read(ref _bytesFrom);

    public long BytesTo => Volatile.Read(ref _bytesTo);

    /// <summary>Links this node asked for that the relay splices now (they count as streams against its limit too).</summary>
    public long SplicesActive => Volatile.Read(ref _splicesActive);

    /// <summary>Links this node asked for that the relay spliced: both halves presented their tickets.</summary>
    public long Splices => Volatile.Read(ref _splices);

    /// <summary>Introductions this node asked for beyond <see cref="IntroductionsPerSecond"/> (or its own outstanding tokens), refused by the relay.</summary>
    public long IntroductionsLimited => Volatile.Read(ref _introductionsLimited);

    /// <summary>
    /// Introductions this node asked for that were refused for the far node: by the far node, as
    /// over its own limit of answers at once, or by the relay, the far node's token places for
    /// this asker (or for all askers) being taken.
    /// </summary>
    public long IntroductionsFarLimited => Volatile.Read(ref _introductionsFarLimited);

    public TimeSpan Throttled => TimeSpan.FromMicroseconds(Volatile.Read(ref _throttledMicroseconds));

    /// <summary>Makes <paramref name="session"/> the node's; returns the one it replaces, for the caller to close.</summary>
    public YamuxSession? Register(YamuxSession session) => Interlocked.Exchange(ref _session, session);

    /// <summary>Forgets <paramref name="session"/> if it is still the registered one.</summary>
    public bool Unregister(YamuxSession session) => Interlocked.CompareExchange(ref _session, null, session) == session;

    /// <summary>Counts a stream the node opens; false (and nothing counted) when it is at its limit.</summary>
    public bool TryOpenStream()
    {
        if (Interlocked.Increment(ref _streamsActive) <= limits.StreamsPerNode)
        {
            return true;
        }

        Interlocked.Decrement(ref _streamsActive);
        return false;
    }

    public void StreamClosed() => Interlocked.Decrement(ref _streamsActive);

    public void StreamRelayed() => Interlocked.Increment(ref _streamsOpened);

    public void StreamRefused() => Interlocked.Increment(ref _streamsRefused);

    /// <summary>Counts an introduction refused for a limit: the relay's on this node (<paramref name="far"/> false) or the far node's own.</summary>
    public void IntroductionLimited(bool far) => Interlocked.Increment(ref far ? ref _introductionsFarLimited : ref _introductionsLimited);

    public void SpliceStarted()
    {
        Interlocked.Increment(ref _splices);
        Interlocked.Increment(ref _splicesActive);
    }

    public void SpliceEnded() => Interlocked.Decrement(ref _splicesActive);

    public void AddFrom(long bytes) => Interlocked.Add(ref _bytesFrom, bytes);

    public void AddTo(long bytes) => Interlocked.Add(ref _bytesTo, bytes);

    public void AddThrottled(TimeSpan wait) => Interlocked.Add(ref _throttledMicroseconds, (long)wait.TotalMicroseconds);
}
