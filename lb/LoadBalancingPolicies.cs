using Forwarder.LoadBalancing.Policies;

namespace Forwarder.LoadBalancing;

/// <summary>The policy names configuration may use, and how each builds a balancer.</summary>
public static class LoadBalancingPolicies
{
    public const string RoundRobin = "round_robin";
    public const string Random = "random";
    public const string LeastRequest = "least_request";
    public const string RingHash = "ring_hash";
    public const string Maglev = "maglev";

    public static IReadOnlyList<string> Names { get; } = [RoundRobin, Random, LeastRequest, RingHash, Maglev];

    public static bool IsKnown(string name) => Names.Contains(name, StringComparer.Ordinal);

    public static bool IsHashPolicy(string name) => name is RingHash or Maglev;

    /// <param name="random">Source of randomness; tests pass a seeded one.</param>
    /// <param name="hashing">Sizes for the hash policies; defaults to Envoy's.</param>
    public static ILoadBalancer Create(string name, IReadOnlyList<LoadBalancerEndpoint> endpoints, Random? random = null, HashingOptions? hashing = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(endpoints.Count);
        random ??= System.Random.Shared;
        hashing ??= HashingOptions.Default;
        return name switch
        {
            RoundRobin => new SmoothWeightedRoundRobin(endpoints),
            Random => new WeightedRandom(endpoints, random),
            LeastRequest => new LeastRequestPowerOfTwo(endpoints, random),
            RingHash => new RingHash(endpoints, hashing.MinRingSize, hashing.MaxRingSize, hashing.BalanceFactor, random),
            Maglev => new Maglev(endpoints, hashing.TableSize, hashing.BalanceFactor, random),
            _ => throw new ArgumentException($"Unknown load-balancing policy '{name}'; expected one of: {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}
