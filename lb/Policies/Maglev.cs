using System.IO.Hashing;
using System.Text;

namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// Google's Maglev hashing: a prime-sized lookup table filled by letting endpoints take turns
/// claiming their next preferred slot (their own permutation of the table), heavier endpoints
/// taking turns more often. A pick is one table read; removing an endpoint moves its keys and
/// only a small share of the others'.
/// </summary>
internal sealed class Maglev : ILoadBalancer
{
    private readonly int[] _table;
    private readonly Random _random;

    private readonly LoadBound _bound;

    public Maglev(IReadOnlyList<LoadBalancerEndpoint> endpoints, int tableSize, int balanceFactor, Random random)
    {
        _random = random;
        _bound = new LoadBound(endpoints, balanceFactor);
        var size = (ulong)tableSize;
        var count = endpoints.Count;
        var offsets = new ulong[count];
        var skips = new ulong[count];
        var next = new ulong[count];
        var credit = new double[count];
        var maxWeight = (double)endpoints.Max(e => e.Weight);
        for (var i = 0; i < count; i++)
        {
            var id = Encoding.UTF8.GetBytes(endpoints[i].Id);
            offsets[i] = XxHash64.HashToUInt64(id, seed: 0) % size;
            skips[i] = (XxHash64.HashToUInt64(id, seed: 1) % (size - 1)) + 1;
        }

        _table = new int[tableSize];
        Array.Fill(_table, -1);
        var filled = 0;
        while (filled < tableSize)
        {
            for (var i = 0; i < count && filled < tableSize; i++)
            {
                // Each round an endpoint earns weight/maxWeight of a turn, so slots follow weights.
                credit[i] += endpoints[i].Weight / maxWeight;
                if (credit[i] < 1)
                {
                    continue;
                }

                credit[i] -= 1;
                int slot;
                do
                {
                    slot = (int)((offsets[i] + (next[i] * skips[i])) % size);
                    next[i]++;
                }
                while (_table[slot] >= 0);

                _table[slot] = i;
                filled++;
            }
        }
    }

    public int Pick() => _table[_random.Next(_table.Length)];

    public int Pick(ulong keyHash) => _bound.Choose(_table, (int)(keyHash % (ulong)_table.Length));
}
