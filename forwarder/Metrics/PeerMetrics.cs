namespace Forwarder.Metrics;

/// <summary>Counters for the links to and from one peer node.</summary>
internal sealed class PeerMetrics(string name)
{
    private readonly long[] _streamsRefused = new long[Enum.GetValues<StreamRefusal>().Length];
    private long _linksUp;
    private long _linksOpened;
    private long _linkFailures;
    private long _streamsOut;
    private long _streamsIn;
    private long _streamsOutRelayed;
    private long _streamsInRelayed;
    private long _streamsActive;

    public string Name { get; } = name;

    /// <summary>Links to or from the peer that are up now (one each way at most).</summary>
    public long LinksUp => Volatile.Read(ref _linksUp);

    public long LinksOpened => Volatile.Read(ref _linksOpened);

    /// <summary>Links this node failed to open to the peer (connect, TLS or authentication).</summary>
    public long LinkFailures => Volatile.Read(ref _linkFailures);

    public long StreamsOut => Volatile.Read(ref _streamsOut);

    public long StreamsIn => Volatile.Read(ref _streamsIn);

    /// <summary>Of <see cref="StreamsOut"/>, those that went through a relay.</summary>
    public long StreamsOutRelayed => Volatile.Read(ref _streamsOutRelayed);

    /// <summary>Of <see cref="StreamsIn"/>, those that came through a relay.</summary>
    public long StreamsInRelayed => Volatile.Read(ref _streamsInRelayed);

    public long StreamsActive => Volatile.Read(ref _streamsActive);

    public void LinkUp()
    {
        Interlocked.Increment(ref _linksUp);
        Interlocked.Increment(ref _linksOpened);
    }

    public void LinkDown() => Interlocked.Decrement(ref _linksUp);

    public void LinkFailed() => Interlocked.Increment(ref _linkFailures);

    public void StreamOpened(bool outbound, bool relayed)
    {
        Interlocked.Increment(ref outbound ? ref _streamsOut : ref _streamsIn);
        if (relayed)
        {
            Interlocked.Increment(ref outbound ? ref _streamsOutRelayed : ref _streamsInRelayed);
        }

        Interlocked.Increment(ref _streamsActive);
    }

    public void StreamClosed() => Interlocked.Decrement(ref _streamsActive);

    /// <summary>Streams from the peer this node answered with NotAllowed, by why.</summary>
    public long StreamsRefused(StreamRefusal reason) => Volatile.Read(ref _streamsRefused[(int)reason]);

    public void StreamRefused(StreamRefusal reason) => Interlocked.Increment(ref _streamsRefused[(int)reason]);
}
