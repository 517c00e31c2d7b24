namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// Power of two choices: sample two endpoints, take the one with less in-flight work per unit of
/// weight. Near-optimal spread without scanning every endpoint. With unequal weights the two are
/// sampled in proportion to weight, so that at equal load per weight (including no load at all)
/// traffic still follows the weights.
/// </summary>
internal sealed class LeastRequestPowerOfTwo : ILoadBalancer
{
    private readonly LoadBalancerEndpoint[] _endpoints;
    private readonly Random _random;
    private readonly AliasTable? _weighted;

    public LeastRequestPowerOfTwo(IReadOnlyList<LoadBalancerEndpoint> endpoints, Random random)
    {
        _endpoints = [.. endpoints];
        _random = random;
        _weighted = _endpoints.Any(e => e.Weight != _endpoints[0].Weight) ? new AliasTable(endpoints) : null;
    }

    public int Pick()
    {
        if (_endpoints.Length == 1)
        {
            return 0;
        }

        int first, second;
        if (_weighted is null)
        {
            first = _random.Next(_endpoints.Length);
            second = _random.Next(_endpoints.Length - 1);
            if (second >= first)
            {
                second++;
            }
        }
        else
        {
            first = _weighted.Sample(_random);
            second = _weighted.Sample(_random);
            if (second == first)
            {
                // One more draw; a heavy endpoint drawn twice again simply has no rival this time.
                second = _weighted.Sample(_random);
            }
        }

        // Compare inFlight/weight without division: a/wa <= b/wb  <=>  a*wb <= b*wa. A tie goes
        // to the first draw, which is weighted.
        var a = _endpoints[first];
        var b = _endpoints[second];
        return (long)a.InFlight * b.Weight <= (long)b.InFlight * a.Weight ? first : second;
    }
}
