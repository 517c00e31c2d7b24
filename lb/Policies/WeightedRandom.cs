namespace Forwarder.LoadBalancing.Policies;

/// <summary>Picks an endpoint with probability proportional to its weight, in O(1) through an alias table.</summary>
internal sealed class WeightedRandom(IReadOnlyList<LoadBalancerEndpoint> endpoints, Random random) : ILoadBalancer
{
    private readonly AliasTable _table = new(endpoints);

    public int Pick() => _table.Sample(random);
}
