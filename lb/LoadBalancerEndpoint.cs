namespace Forwarder.LoadBalancing;

/// <summary>
/// What a balancer knows of one endpoint: its configured weight and the work currently in flight
/// on it (active connections for L4, requests for L7).
/// </summary>
public sealed class LoadBalancerEndpoint(string id, int weight)
{
    private int _inFlight;

    public string Id { get; } = id;

    public int Weight { get; } = weight > 0 ? weight : throw new ArgumentOutOfRangeException(nameof(weight), weight, "Weights are positive.");

    public int InFlight => Volatile.Read(ref _inFlight);

    public void Begin() => Interlocked.Increment(ref _inFlight);

    public void End() => Interlocked.Decrement(ref _inFlight);
}
