namespace Forwarder.LoadBalancing.Policies;

/// <summary>Picks an endpoint with probability proportional to its weight (binary search over cumulative weights).</summary>
internal sealed class WeightedRandom(IReadOnlyList<LoadBalancerEndpoint> endpoints, Random random) : ILoadBalancer
{
    private readonly long[] _cumulative = Cumulate(endpoints);

    public int Pick()
    {
        var ticket = random.NextInt64(_cumulative[^1]);
        var index = Array.BinarySearch(_cumulative, ticket + 1);
        return index >= 0 ? index : ~index;
    }

    private static long[] Cumulate(IReadOnlyList<LoadBalancerEndpoint> endpoints)
    {
        var sums = new long[endpoints.Count];
        long total = 0;
        for (var i = 0; i < sums.Length; i++)
        {
            total += endpoints[i].Weight;
            sums[i] = total;
        }

        return sums;
    }
}
