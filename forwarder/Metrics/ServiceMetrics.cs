namespace Forwarder.Metrics;

/// <summary>Why dialing an upstream endpoint failed.</summary>
internal enum ConnectFailure
{
    Refused,
    Timeout,
    Unreachable,

    /// <summary>The node hosting the endpoint refused it to this node (NotAllowed): not exported, or this node is not its peer.</summary>
    Denied,
    Other,

    /// <summary>This node's fault, not the endpoint's (out of file descriptors, buffers or local ports): not reported to outlier detection.</summary>
    Local,

    /// <summary>An HTTP/2 endpoint took the connection but sent no SETTINGS in time: not speaking h2c (or TLS h2), or stalled.</summary>
    SettingsTimeout,
}

internal static class ConnectFailures
{
    /// <summary>The metric label (the reason in snake case).</summary>
    public static string Label(ConnectFailure failure) => failure == ConnectFailure.SettingsTimeout ? "settings_timeout" : failure.ToString().ToLowerInvariant();
}

/// <summary>Counters for one service (cluster), kept across reloads for as long as the name exists.</summary>
internal sealed class ServiceMetrics(string name)
{
    private readonly long[] _connectErrors = new long[Enum.GetValues<ConnectFailure>().Length];
    private long _active;
    private long _total;
    private long _exhausted;
    private long _noneAvailable;
    private long _poolFull;
    private long _bytesToUpstream;
    private long _bytesFromUpstream;

    public string Name { get; } = name;

    public LatencyHistogram ConnectLatency { get; } = new();

    /// <summary>Endpoint picks per locality level (node, zone, other), when the service balances by locality.</summary>
    public Forwarder.LoadBalancing.Locality.LevelPicks LocalityPicks { get; } = new();

    /// <summary>Requests from http listeners to this service.</summary>
    public HttpMetrics Http { get; } = new();

    public long Active => Volatile.Read(ref _active);

    public long Total => Volatile.Read(ref _total);

    /// <summary>Client connections closed because no endpoint could be reached within the attempts allowed.</summary>
    public long Exhausted => Volatile.Read(ref _exhausted);

    /// <summary>Client connections closed because health left no endpoint to try.</summary>
    public long NoneAvailableCount => Volatile.Read(ref _noneAvailable);

    /// <summary>Connections not opened because their endpoint had its limit open already (http.maxConnections).</summary>
    public long PoolFullCount => Volatile.Read(ref _poolFull);

    public long BytesToUpstream => Volatile.Read(ref _bytesToUpstream);

    public long BytesFromUpstream => Volatile.Read(ref _bytesFromUpstream);

    public long ConnectErrors(ConnectFailure failure) => Volatile.Read(ref _connectErrors[(int)failure]);

    public void UpstreamOpened()
    {
        Interlocked.Increment(ref _active);
        Interlocked.Increment(ref _total);
    }

    public void UpstreamClosed() => Interlocked.Decrement(ref _active);

    public void ConnectFailed(ConnectFailure failure) => Interlocked.Increment(ref _connectErrors[(int)failure]);

    public void AttemptsExhausted() => Interlocked.Increment(ref _exhausted);

    public void NoneAvailable() => Interlocked.Increment(ref _noneAvailable);

    public void PoolFull() => Interlocked.Increment(ref _poolFull);

    public void AddToUpstream(long bytes) => Interlocked.Add(ref _bytesToUpstream, bytes);

    public void AddFromUpstream(long bytes) => Interlocked.Add(ref _bytesFromUpstream, bytes);
}
