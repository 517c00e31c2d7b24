namespace Forwarder.LoadBalancing;

/// <summary>
/// What a balancer knows of one endpoint: its configured weight and the work currently in flight
/// on it (active connections for L4, requests for L7).
/// </summary>
/// <param name="group">The service's in-flight total, which this endpoint's work also counts in (bounded-load hashing reads it).</param>
public sealed class LoadBalancerEndpoint(string id, int weight, LoadGroup? group = null)
{
    private int _inFlight;

    public LoadGroup? Group { get; } = group;

    public string Id { get; } = id;

    public int Weight { get; } = weight > 0 ? weight : throw new ArgumentOutOfRangeException(nameof(weight), weight, "Weights are positive.");

    public int InFlight => Volatile.Read(ref _inFlight);

    public void Begin()
    {
        Interlocked.Increment(ref _inFlight);
        Group?.Begin();
    }

    public void End()
    {
        Interlocked.Decrement(ref _inFlight);
        Group?.End();
    }
}
