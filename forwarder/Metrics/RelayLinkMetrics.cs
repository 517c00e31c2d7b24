namespace Forwarder.Metrics;

/// <summary>Counters for this node's session with one relay server.</summary>
internal sealed class RelayLinkMetrics(string name)
{
    private long _up;
    private long _registrations;
    private long _failures;

    public string Name { get; } = name;

    /// <summary>1 while this node is registered with the relay.</summary>
    public long Up => Volatile.Read(ref _up);

    public long Registrations => Volatile.Read(ref _registrations);

    /// <summary>Attempts to reach and register with the relay that failed.</summary>
    public long Failures => Volatile.Read(ref _failures);

    public void Registered()
    {
        Volatile.Write(ref _up, 1);
        Interlocked.Increment(ref _registrations);
    }

    public void Lost() => Volatile.Write(ref _up, 0);

    public void Failed() => Interlocked.Increment(ref _failures);
}
