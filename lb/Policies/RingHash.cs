using System.Buffers.Binary;
using System.Text;
using Forwarder.LoadBalancing.Hashing;

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
        long totalWeight = endpoints.Sum(e => (long)e.Weight);
        var pointsPerWeight = Math.Max(KetamaPointsPerWeight, minRingSize);
        if (totalWeight * pointsPerWeight > maxRingSize)
        {
            pointsPerWeight = (int)Math.Max(1, maxRingSize / totalWeight);
        }

        var points = new List<(ulong Hash, int Owner)>();
        Span<byte> key = stackalloc byte[512];
        for (var i = 0; i < endpoints.Count; i++)
        {
            var count = endpoints[i].Weight * pointsPerWeight;
            var id = Encoding.UTF8.GetBytes(endpoints[i].Id + "_");
            for (var n = 0; n < count; n++)
            {
                // Points are named "<id>_<n>", so every process derives the same ring.
                id.CopyTo(key);
                var length = id.Length + Encoding.ASCII.GetBytes(n.ToString(System.Globalization.CultureInfo.InvariantCulture), key[id.Length..]);
                points.Add((XxHash64.Hash(key[..length]), i));
            }
        }

        points.Sort((a, b) => a.Hash != b.Hash ? a.Hash.CompareTo(b.Hash) : a.Owner.CompareTo(b.Owner));
        _hashes = points.Select(p => p.Hash).ToArray();
        _owners = points.Select(p => p.Owner).ToArray();

        // _buckets[b] is the first ring position whose hash has top bits >= b: a pick searches
        // only its own bucket (a handful of points) instead of the whole ring.
        _buckets = new int[(1 << BucketBits) + 1];
        var position = 0;
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
