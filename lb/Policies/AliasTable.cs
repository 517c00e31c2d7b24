namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// Walker's alias method (Vose's construction): samples an index with probability proportional
/// to its weight in O(1) from one random 64-bit number, where a binary search over cumulative
/// weights costs O(log n).
/// </summary>
internal sealed class AliasTable
{
    private readonly uint[] _keep;
    private readonly int[] _alias;

    public AliasTable(IReadOnlyList<LoadBalancerEndpoint> endpoints)
    {
        var n = endpoints.Count;
        _keep = new uint[n];
        _alias = new int[n];
        var total = endpoints.Sum(e => (double)e.Weight);

        // Each column holds n * weight / total of probability mass; columns under 1 are topped up
        // from one column over 1, which becomes their alias.
        var mass = endpoints.Select(e => e.Weight * n / total).ToArray();
        var small = new Stack<int>();
        var large = new Stack<int>();
        for (var i = 0; i < n; i++)
        {
            (mass[i] < 1 ? small : large).Push(i);
        }

        while (small.Count > 0 && large.Count > 0)
        {
            var under = small.Pop();
            var over = large.Peek();
            _keep[under] = ToThreshold(mass[under]);
            _alias[under] = over;
            mass[over] -= 1 - mass[under];
            if (mass[over] < 1)
            {
                small.Push(large.Pop());
            }
        }

        // What is left is full up to rounding: kept whole.
        foreach (var i in small.Concat(large))
        {
            _keep[i] = uint.MaxValue;
            _alias[i] = i;
        }
    }

    public int Sample(Random random)
    {
        // 63 random bits: the high 32 pick the column (multiply-shift, no modulo bias to speak
        // of), the low 31 decide between the column and its alias.
        var bits = (ulong)random.NextInt64();
        var column = (int)(((bits >> 31) * (ulong)_keep.Length) >> 32);
        return (uint)(bits << 1) < _keep[column] || _keep[column] == uint.MaxValue ? column : _alias[column];
    }

    private static uint ToThreshold(double probability) => (uint)Math.Clamp(probability * 4294967296.0, 0, uint.MaxValue);
}
