namespace Forwarder.Metrics;

/// <summary>Why a datagram from a client was not forwarded.</summary>
internal enum UdpDrop
{
    /// <summary>No endpoint of the service could take a new session (none available, or its socket could not be opened).</summary>
    NoEndpoint,

    /// <summary>The listener had udp.maxSessions sessions open.</summary>
    SessionLimit,

    /// <summary>A send failed: to the endpoint (the session just ended), or a reply to the client (the listener's buffer full).</summary>
    SendFailed,
}

/// <summary>Why a udp session ended.</summary>
internal enum UdpSessionEnd
{
    /// <summary>No datagram either way for udp.idleTimeout.</summary>
    Idle,

    /// <summary>The endpoint answered ICMP unreachable (the connected socket reports a refused or unreachable peer).</summary>
    Unreachable,

    /// <summary>A reload removed the session's endpoint from the service, or the listener.</summary>
    Reload,

    /// <summary>The forwarder is shutting down.</summary>
    Shutdown,
}

/// <summary>Session and datagram counters of one udp listener, kept across reloads for as long as the name exists.</summary>
internal sealed class UdpMetrics(string name)
{
    private readonly long[] _drops = new long[Enum.GetValues<UdpDrop>().Length];
    private readonly long[] _ends = new long[Enum.GetValues<UdpSessionEnd>().Length];
    private long _active;
    private long _total;
    private long _datagramsIn;
    private long _datagramsOut;

    public string Name { get; } = name;

    public long Active => Volatile.Read(ref _active);

    public long Total => Volatile.Read(ref _total);

    /// <summary>Datagrams from clients forwarded to endpoints.</summary>
    public long DatagramsIn => Volatile.Read(ref _datagramsIn);

    /// <summary>Datagrams from endpoints forwarded to clients.</summary>
    public long DatagramsOut => Volatile.Read(ref _datagramsOut);

    public long Drops(UdpDrop reason) => Volatile.Read(ref _drops[(int)reason]);

    public long Ends(UdpSessionEnd reason) => Volatile.Read(ref _ends[(int)reason]);

    public void SessionOpened()
    {
        Interlocked.Increment(ref _active);
        Interlocked.Increment(ref _total);
    }

    public void SessionEnded(UdpSessionEnd reason)
    {
        Interlocked.Decrement(ref _active);
        Interlocked.Increment(ref _ends[(int)reason]);
    }

    public void ForwardedIn() => Interlocked.Increment(ref _datagramsIn);

    public void ForwardedOut() => Interlocked.Increment(ref _datagramsOut);

    public void Dropped(UdpDrop reason) => Interlocked.Increment(ref _drops[(int)reason]);

    public static string Label(UdpDrop reason) => reason switch
    {
        UdpDrop.NoEndpoint => "no_endpoint",
        UdpDrop.SessionLimit => "session_limit",
        _ => "send_failed",
    };

    public static string Label(UdpSessionEnd reason) => reason.ToString().ToLowerInvariant();
}
