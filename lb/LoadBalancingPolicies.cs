using Forwarder.LoadBalancing.Policies;

namespace Forwarder.LoadBalancing;

/// <summary>The policy names configuration may use, and how each builds a balancer.</summary>
public static class LoadBalancingPolicies
{
    public const string RoundRobin = "round_robin";
    public const string Random = "random";
    public const string LeastRequest = "least_request";

    public static IReadOnlyList<string> Names { get; } = [RoundRobin, Random, LeastRequest];

    public static bool IsKnown(string name) => Names.Contains(name, StringComparer.Ordinal);

    /// <param name="random">Source of randomness; tests pass a seeded one.</param>
    public static ILoadBalancer Create(string name, IReadOnlyList<LoadBalancerEndpoint> endpoints, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(endpoints.Count);
        random ??= System.Random.Shared;
        return name switch
        {
            RoundRobin => new SmoothWeightedRoundRobin(endpoints),
            Random => new WeightedRandom(endpoints, random),
            LeastRequest => new LeastRequestPowerOfTwo(endpoints, random),
            _ => throw new ArgumentException($"Unknown load-balancing policy '{name}'; expected one of: {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}
