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

    /// <summary>
    /// The endpoint for a key whose preferred position in <paramref name="owners"/> (a ring's points
    /// or a Maglev table) is <paramref name="start"/>: that position's owner if the bound is off or
    /// it has room, else the owner of the first later position (wrapping) that has; one always has.
    /// </summary>
    public int Choose(int[] owners, int start)
    {
        if (_group is null || _factor <= 0)
        {
            return owners[start];
        }

        for (var step = 0; step < owners.Length; step++)
        {
            var owner = owners[(start + step) % owners.Length];
            if (Fits(owner))
            {
                return owner;
            }
        }

        return owners[start];
    }

    private bool Fits(int index)
    {
        var endpoint = _endpoints[index];
        var capacity = Math.Ceiling(_factor * (_group!.InFlight + 1) * endpoint.Weight / _totalWeight);
        return endpoint.InFlight + 1 <= capacity;
    }
}
