using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;

namespace Forwarder.LoadBalancing.Policies;

/// <summary>
/// Ketama-style consistent hashing: each endpoint owns points on a 64-bit ring in proportion to
/// its weight, and a key goes to the first point at or after its hash. Every unit of weight owns
/// minRingSize points (at least ketama's 160), so the ring is never smaller than minRingSize and
/// an endpoint's points depend only on its own name and weight: removing one moves exactly the
/// keys it owned. Only a ring that would exceed maxRingSize is scaled down, and then keys move
/// more widely.
/// </summary>
internal sealed class RingHash : ILoadBalancer
{
    private const int KetamaPointsPerWeight = 160;
    private const int BucketBits = 16;

    private readonly ulong[] _hashes;
    private readonly int[] _owners;
    private readonly int[] _buckets;
    private readonly Random _random;

    private readonly LoadBound _bound;

    public RingHash(IReadOnlyList<LoadBalancerEndpoint> endpoints, int minRingSize, int maxRingSize, int balanceFactor, Random random)
    {
        _random = random;
        _bound = new LoadBound(endpoints, balanceFactor);
        var totalWeight = endpoints.Sum(e => (long)e.Weight);
        var pointsPerWeight = Math.Max(KetamaPointsPerWeight, minRingSize);
        if (totalWeight * pointsPerWeight > maxRingSize)
        {
            pointsPerWeight = (int)Math.Max(1, maxRingSize / totalWeight);
        }

        long total = 0;
        foreach (var endpoint in endpoints)
        {
            total += (long)endpoint.Weight * pointsPerWeight;
        }

        _hashes = new ulong[total];
        _owners = new int[total];
        Span<byte> key = stackalloc byte[512];
        var position = 0;
        for (var i = 0; i < endpoints.Count; i++)
        {
            var count = endpoints[i].Weight * pointsPerWeight;
            var prefix = Encoding.UTF8.GetBytes(endpoints[i].Id + "_", key);
            for (var n = 0; n < count; n++)
            {
                // Points are named "<id>_<n>", so every process derives the same ring.
                n.TryFormat(key[prefix..], out var digits, provider: CultureInfo.InvariantCulture);
                _hashes[position] = XxHash64.HashToUInt64(key[..(prefix + digits)]);
                _owners[position++] = i;
            }
        }

        Array.Sort(_hashes, _owners);
        OrderCollisions(endpoints);

        // _buckets[b] is the first ring position whose hash has top bits >= b: a pick searches
        // only its own bucket (a handful of points) instead of the whole ring.
        _buckets = new int[(1 << BucketBits) + 1];
        position = 0;
        for (var bucket = 0; bucket <= 1 << BucketBits; bucket++)
        {
            while (position < _hashes.Length && (_hashes[position] >> (64 - BucketBits)) < (ulong)bucket)
            {
                position++;
            }

            _buckets[bucket] = position;
        }
    }

    public int RingSize => _hashes.Length;

    /// <summary>
    /// Two points with the same 64-bit hash (about one ring in ten million has a pair) are put in
    /// the order of their endpoints' names, so the ring does not depend on the config's order.
    /// </summary>
    private void OrderCollisions(IReadOnlyList<LoadBalancerEndpoint> endpoints)
    {
        for (var start = 0; start < _hashes.Length - 1; start++)
        {
            var end = start + 1;
            while (end < _hashes.Length && _hashes[end] == _hashes[start])
            {
                end++;
            }

            if (end - start > 1)
            {
                Array.Sort(_owners, start, end - start, Comparer<int>.Create((a, b) => string.CompareOrdinal(endpoints[a].Id, endpoints[b].Id)));
            }

            start = end - 1;
        }
    }

    public int Pick() => Pick((ulong)_random.NextInt64() ^ ((ulong)_random.Next() << 63));

    public int Pick(ulong keyHash)
    {
        var bucket = (int)(keyHash >> (64 - BucketBits));
        var start = _buckets[bucket];
        var index = Array.BinarySearch(_hashes, start, _buckets[bucket + 1] - start, keyHash);
        if (index < 0)
        {
            index = ~index;
        }

        if (index == _hashes.Length)
        {
            index = 0;
        }

        return _bound.Choose(_owners, index);
    }
}
