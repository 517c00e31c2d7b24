namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// nginx's smooth weighted round robin: weights 5,1,1 give a,a,b,a,c,a,a rather than a burst of
/// five picks of a. The sequence repeats every sum-of-weights picks (after dividing by their
/// greatest common divisor), so it is computed once at build time and a pick is a lock-free step
/// through it. Only a sequence too long to keep falls back to computing each pick under a lock.
/// </summary>
internal sealed class SmoothWeightedRoundRobin : ILoadBalancer
{
    private const int MaxSequenceLength = 1 << 20;

    private readonly int[]? _sequence;
    private readonly SmoothWeights? _weights;
    private uint _next = uint.MaxValue;

    public SmoothWeightedRoundRobin(IReadOnlyList<LoadBalancerEndpoint> endpoints)
    {
        var divisor = endpoints.Select(e => e.Weight).Aggregate(Gcd);
        var weights = endpoints.Select(e => e.Weight / divisor).ToArray();
        var period = weights.Sum(w => (long)w);
        if (period <= MaxSequenceLength)
        {
            var smooth = new SmoothWeights(weights);
            _sequence = new int[period];
            for (var i = 0; i < _sequence.Length; i++)
            {
                _sequence[i] = smooth.Next();
            }
        }
        else
        {
            _weights = new SmoothWeights(weights);
        }
    }

    public int Pick()
    {
        if (_sequence is not null)
        {
            return _sequence[Interlocked.Increment(ref _next) % (uint)_sequence.Length];
        }

        lock (_weights!)
        {
            return _weights.Next();
        }
    }

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);

    /// <summary>The algorithm itself: each pick, every endpoint gains its weight; the richest is picked and pays the total.</summary>
    private sealed class SmoothWeights(int[] weights)
    {
        private readonly int[] _current = new int[weights.Length];
        private readonly long _total = weights.Sum(w => (long)w);

        public int Next()
        {
            var best = 0;
            for (var i = 0; i < weights.Length; i++)
            {
                _current[i] += weights[i];
                if (_current[i] > _current[best])
                {
                    best = i;
                }
            }

            _current[best] -= (int)_total;
            return best;
        }
    }
}
