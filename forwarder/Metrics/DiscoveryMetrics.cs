namespace Forwarder.Metrics;

/// <summary>The state of Kubernetes discovery: whether its list and watch calls get through, and what they found.</summary>
internal sealed class DiscoveryMetrics
{
    private long _enabled;
    private long _connected;
    private long _lastSyncTicks;
    private long _relists;
    private long _watchRestarts;
    private long _errors;
    private long _services;
    private long _endpoints;
    private long _fromCache;

    /// <summary>1 once a cluster section started discovery; the series are written only then.</summary>
    public bool Enabled => Volatile.Read(ref _enabled) == 1;

    /// <summary>1 while the last call to the API server succeeded.</summary>
    public long Connected => Volatile.Read(ref _connected);

    /// <summary>When the API server last answered a list or sent a watch event or bookmark (UTC ticks; 0 for never).</summary>
    public long LastSyncTicks => Volatile.Read(ref _lastSyncTicks);

    /// <summary>Full lists after the first (a 410 Gone or an error past the watch).</summary>
    public long Relists => Volatile.Read(ref _relists);

    /// <summary>Watches opened again from the last resource version after the server or the network ended one.</summary>
    public long WatchRestarts => Volatile.Read(ref _watchRestarts);

    public long Errors => Volatile.Read(ref _errors);

    public long Services => Volatile.Read(ref _services);

    public long Endpoints => Volatile.Read(ref _endpoints);

    /// <summary>1 while the state served is the cache file's, not yet confirmed by the API server.</summary>
    public long FromCache => Volatile.Read(ref _fromCache);

    public void Enable() => Volatile.Write(ref _enabled, 1);

    public void Synced(DateTimeOffset now)
    {
        Volatile.Write(ref _connected, 1);
        Volatile.Write(ref _lastSyncTicks, now.UtcTicks);
    }

    public void Failed()
    {
        Volatile.Write(ref _connected, 0);
        Interlocked.Increment(ref _errors);
    }

    public void Relisted() => Interlocked.Increment(ref _relists);

    public void WatchRestarted() => Interlocked.Increment(ref _watchRestarts);

    public void Discovered(int services, int endpoints, bool fromCache)
    {
        Volatile.Write(ref _services, services);
        Volatile.Write(ref _endpoints, endpoints);
        Volatile.Write(ref _fromCache, fromCache ? 1 : 0);
    }
}
