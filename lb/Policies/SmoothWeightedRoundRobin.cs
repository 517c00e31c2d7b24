namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// nginx's smooth weighted round robin: weights 5,1,1 give a,a,b,a,c,a,a rather than a burst of
/// five picks of a. Equal weights degrade to a lock-free rotating counter.
/// </summary>
internal sealed class SmoothWeightedRoundRobin : ILoadBalancer
{
    private readonly int[] _weights;
    private readonly int[] _current;
    private readonly int _totalWeight;
    private readonly bool _uniform;
    private readonly Lock _lock = new();
    private uint _next = uint.MaxValue;

    public SmoothWeightedRoundRobin(IReadOnlyList<LoadBalancerEndpoint> endpoints)
    {
        _weights = endpoints.Select(e => e.Weight).ToArray();
        _current = new int[_weights.Length];
        _totalWeight = _weights.Sum();
        _uniform = _weights.All(w => w == _weights[0]);
    }

    public int Pick()
    {
        if (_uniform)
        {
            return (int)(Interlocked.Increment(ref _next) % (uint)_weights.Length);
        }

        lock (_lock)
        {
            var best = 0;
            for (var i = 0; i < _weights.Length; i++)
            {
                _current[i] += _weights[i];
                if (_current[i] > _current[best])
                {
                    best = i;
                }
            }

            _current[best] -= _totalWeight;
            return best;
        }
    }
}
