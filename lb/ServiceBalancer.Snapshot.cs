using Forwarder.LoadBalancing.Locality;

namespace Forwarder.LoadBalancing;

public sealed partial class ServiceBalancer
{
    /// <summary>One priority level's balancer, over the endpoints <see cref="Indices"/> maps its picks to.</summary>
    /// <param name="Panic">The level is short of available endpoints and all of them take its share.</param>
    private sealed record Level(ILoadBalancer Balancer, int[] Indices, bool Panic);

    /// <summary>What picks read: a balancer per level that takes traffic, and the cumulative percent bounds that choose the level.</summary>
    /// <param name="Levels">Null where a level gets no traffic.</param>
    /// <param name="Bounds">Level i takes draws below Bounds[i] (0..99); the last is 100, or 0 when nothing is available.</param>
    private sealed class Snapshot(Level?[] levels, int[] bounds, bool[] available, int availableCount, bool panic, LevelPicks? picks)
    {
        /// <summary>See <see cref="SoleLevel"/>: a pick draws a level only when several share the traffic (the common case, this node healthy, draws nothing).</summary>
        private readonly int _sole = SoleLevel(bounds);

        public bool[] Available { get; } = available;

        public int AvailableCount { get; } = availableCount;

        public bool Panic { get; } = panic;

        public int Pick(ulong? keyHash, Random random)
        {
            var chosen = Choose(keyHash, random);
            if (chosen < 0)
            {
                return -1;
            }

            var level = levels[chosen]!;
            picks?.Count(chosen);
            var index = keyHash is { } key ? level.Balancer.Pick(key) : level.Balancer.Pick();
            return level.Indices[index];
        }

        public bool Takes(int index, int level) => Available[index] || levels[level]?.Panic == true;

        private int Choose(ulong? keyHash, Random random)
        {
            if (_sole != -2)
            {
                return _sole;
            }

            // A key picks its level by its hash too (as Envoy does), so a key stays on one level while health holds.
            var draw = keyHash is { } key ? (int)(Mix(key) % PriorityLoad.Total) : random.Next(PriorityLoad.Total);
            var chosen = 0;
            while (draw >= bounds[chosen])
            {
                chosen++;
            }

            return chosen;
        }

        /// <summary>-1 when nothing takes traffic, the level when one takes it all, else -2: draw.</summary>
        private static int SoleLevel(int[] bounds)
        {
            if (bounds[^1] == 0)
            {
                return -1;
            }

            var first = Array.FindIndex(bounds, b => b > 0);
            return bounds[first] == PriorityLoad.Total ? first : -2;
        }

        /// <summary>Decorrelates the level draw from the ring or table position the same hash picks within the level.</summary>
        private static ulong Mix(ulong hash)
        {
            hash ^= hash >> 31;
            hash *= 0xBF58476D1CE4E5B9UL;
            return hash ^ (hash >> 29);
        }
    }
}
