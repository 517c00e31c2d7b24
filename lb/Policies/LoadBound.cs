namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// "Consistent hashing with bounded loads" (Mirrokni, Thorup, Zadimoghaddam): an endpoint may take
/// a new unit of work only while its in-flight work stays within factor × its weighted share of
/// the total, counting the new unit.
/// </summary>
internal sealed class LoadBound(IReadOnlyList<LoadBalancerEndpoint> endpoints, int balanceFactor)
{
    private readonly LoadBalancerEndpoint[] _endpoints = [.. endpoints];
    private readonly LoadGroup? _group = endpoints[0].Group;
    private readonly double _factor = balanceFactor / 100.0;
    private readonly double _totalWeight = endpoints.Sum(e => (double)e.Weight);

    public bool Enabled => _group is not null && _factor > 0;

    public bool Fits(int index)
    {
        var endpoint = _endpoints[index];
        var capacity = Math.Ceiling(_factor * (_group!.InFlight + 1) * endpoint.Weight / _totalWeight);
        return endpoint.InFlight + 1 <= capacity;
    }
}
