using Forwarder.LoadBalancing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>Reads a service's <c>lb</c> section: the policy and, for the hash policies, their sizes.</summary>
internal static class LbConfigReader
{
    public static (string Policy, HashingOptions Hashing) Read(YamlFieldReader reader, YamlNode? node, string servicePath)
    {
        var defaults = HashingOptions.Default;
        if (node is null)
        {
            return (LoadBalancingPolicies.RoundRobin, defaults);
        }

        var path = $"{servicePath}.lb";
        var fields = reader.Mapping(node, path, "policy", "minRingSize", "maxRingSize", "tableSize", "hashBalanceFactor");
        if (fields is null)
        {
            return (LoadBalancingPolicies.RoundRobin, defaults);
        }

        var policy = reader.String(fields, path, "policy", required: false, node) ?? LoadBalancingPolicies.RoundRobin;
        if (!LoadBalancingPolicies.IsKnown(policy))
        {
            reader.Error(fields["policy"], $"{path}.policy", $"unknown policy '{policy}'; expected one of: {string.Join(", ", LoadBalancingPolicies.Names)}");
        }

        var hashing = new HashingOptions(
            MinRingSize: reader.Int(fields, path, "minRingSize", defaults.MinRingSize, 1, 8 * 1024 * 1024),
            MaxRingSize: reader.Int(fields, path, "maxRingSize", defaults.MaxRingSize, 1, 8 * 1024 * 1024),
            TableSize: reader.Int(fields, path, "tableSize", defaults.TableSize, 2, 5_000_011),
            BalanceFactor: reader.Int(fields, path, "hashBalanceFactor", defaults.BalanceFactor, 0, 10_000));
        if (hashing.MinRingSize > hashing.MaxRingSize)
        {
            reader.Error(fields.GetValueOrDefault("minRingSize") ?? node, $"{path}.minRingSize", $"{hashing.MinRingSize} is above maxRingSize ({hashing.MaxRingSize})");
        }

        if (hashing.BalanceFactor is > 0 and < 100)
        {
            reader.Error(fields["hashBalanceFactor"], $"{path}.hashBalanceFactor", $"{hashing.BalanceFactor} is below 100; it is a percentage of the average load (125 allows 1.25x), or 0 for no bound");
        }

        if (!HashingOptions.IsPrime(hashing.TableSize))
        {
            reader.Error(fields["tableSize"], $"{path}.tableSize", $"{hashing.TableSize} is not prime; Maglev needs a prime table size such as 65537 or 5000011");
        }

        return (policy, hashing);
    }
}
