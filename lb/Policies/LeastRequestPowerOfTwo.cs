namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// Power of two choices: sample two endpoints, take the one with less in-flight work per unit of
/// weight. Near-optimal spread without scanning every endpoint.
/// </summary>
internal sealed class LeastRequestPowerOfTwo(IReadOnlyList<LoadBalancerEndpoint> endpoints, Random random) : ILoadBalancer
{
    private readonly LoadBalancerEndpoint[] _endpoints = [.. endpoints];

    public int Pick()
    {
        if (_endpoints.Length == 1)
        {
            return 0;
        }

        var first = random.Next(_endpoints.Length);
        var second = random.Next(_endpoints.Length - 1);
        if (second >= first)
        {
            second++;
        }

        // Compare inFlight/weight without division: a/wa <= b/wb  <=>  a*wb <= b*wa.
        var a = _endpoints[first];
        var b = _endpoints[second];
        return (long)a.InFlight * b.Weight <= (long)b.InFlight * a.Weight ? first : second;
    }
}
