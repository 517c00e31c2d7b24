namespace Forwarder.Metrics;

/// <summary>Counters for the links to and from one peer node.</summary>
internal sealed class PeerMetrics(string name)
{
    private readonly long[] _streamsRefused = new long[Enum.GetValues<StreamRefusal>().Length];
    private long _linksUp;
    private long _linksOpened;
    private long _linkFailures;
    private readonly long[] _streamsOut = new long[Enum.GetValues<LinkPath>().Length];
    private readonly long[] _streamsIn = new long[Enum.GetValues<LinkPath>().Length];
    private long _streamsActive;
    private readonly long[] _punches = new long[Enum.GetValues<LinkPath>().Length];
    private readonly long[] _punchesOk = new long[Enum.GetValues<LinkPath>().Length];
    private readonly long[] _punchesFailed = new long[Enum.GetValues<LinkPath>().Length];

    public string Name { get; } = name;

    /// <summary>Links to or from the peer that are up now (one per transport each way at most).</summary>
    public long LinksUp => Volatile.Read(ref _linksUp);

    public long LinksOpened => Volatile.Read(ref _linksOpened);

    /// <summary>Links this node failed to open to the peer (connect, TLS or authentication).</summary>
    public long LinkFailures => Volatile.Read(ref _linkFailures);

    public long StreamsOut => Enum.GetValues<LinkPath>().Sum(StreamsOutOver);

    public long StreamsIn => Enum.GetValues<LinkPath>().Sum(StreamsInOver);

    /// <summary>Of <see cref="StreamsOut"/>, those that went through a relay.</summary>
    public long StreamsOutRelayed => StreamsOutOver(LinkPath.Relay);

    /// <summary>Of <see cref="StreamsIn"/>, those that came through a relay.</summary>
    public long StreamsInRelayed => StreamsInOver(LinkPath.Relay);

    public long StreamsOutOver(LinkPath path) => Volatile.Read(ref _streamsOut[(int)path]);

    public long StreamsInOver(LinkPath path) => Volatile.Read(ref _streamsIn[(int)path]);

    public long StreamsActive => Volatile.Read(ref _streamsActive);

    /// <summary>Hole punches this node started towards the peer for a link over <paramref name="path"/> (a QUIC link, or TCP by simultaneous open).</summary>
    public long Punches(LinkPath path) => Volatile.Read(ref _punches[(int)path]);

    /// <summary>Of <see cref="Punches"/>, those that ended in a link.</summary>
    public long PunchesSucceeded(LinkPath path) => Volatile.Read(ref _punchesOk[(int)path]);

    public long PunchesFailed(LinkPath path) => Volatile.Read(ref _punchesFailed[(int)path]);

    public void PunchAttempted(LinkPath path) => Interlocked.Increment(ref _punches[(int)path]);

    public void PunchSucceeded(LinkPath path) => Interlocked.Increment(ref _punchesOk[(int)path]);

    public void PunchFailed(LinkPath path) => Interlocked.Increment(ref _punchesFailed[(int)path]);

    public void LinkUp()
    {
        Interlocked.Increment(ref _linksUp);
        Interlocked.Increment(ref _linksOpened);
    }

    public void LinkDown() => Interlocked.Decrement(ref _linksUp);

    public void LinkFailed() => Interlocked.Increment(ref _linkFailures);

    public void StreamOpened(bool outbound, LinkPath path)
    {
        Interlocked.Increment(ref (outbound ? _streamsOut : _streamsIn)[(int)path]);
        Interlocked.Increment(ref _streamsActive);
    }

    public void StreamClosed() => Interlocked.Decrement(ref _streamsActive);

    /// <summary>Streams from the peer this node answered with NotAllowed, by why.</summary>
    public long StreamsRefused(StreamRefusal reason) => Volatile.Read(ref _streamsRefused[(int)reason]);

    public void StreamRefused(StreamRefusal reason) => Interlocked.Increment(ref _streamsRefused[(int)reason]);
}

/// <summary>The way a stream between two nodes went; the label values are /metrics' <c>path</c>.</summary>
internal enum LinkPath
{
    /// <summary>A TLS 1.3 + yamux link over TCP (direct-tcp).</summary>
    DirectTcp,

    /// <summary>A QUIC link (direct-quic).</summary>
    DirectQuic,

    /// <summary>Through a relay (relay).</summary>
    Relay,

    /// <summary>A TLS 1.3 + yamux link over a TCP connection opened through both NATs by simultaneous open (punched-tcp).</summary>
    PunchedTcp,

    /// <summary>A TLS 1.3 + yamux link between the nodes over two TCP connections a relay splices, never seeing their plaintext (relay-spliced).</summary>
    RelaySpliced,
}
