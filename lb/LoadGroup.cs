namespace Forwarder.LoadBalancing;

/// <summary>In-flight work across all endpoints of one service: the average that bounded-load hashing caps against.</summary>
public sealed class LoadGroup
{
    private int _inFlight;

    public int InFlight => Volatile.Read(ref _inFlight);

    internal void Begin() => Interlocked.Increment(ref _inFlight);

    internal void End() => Interlocked.Decrement(ref _inFlight);
}
