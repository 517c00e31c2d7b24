using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// A service's load balancing as configured: the policy, the sizes and keys of the hash
/// policies, and the share of endpoints below which health is ignored.
/// </summary>
internal sealed record LbConfig(string Policy, HashingOptions Hashing, IReadOnlyList<HashKey> HashKeys, int PanicThreshold)
{
    /// <summary>Envoy's default panic threshold: half of the endpoints.</summary>
    public const int DefaultPanicThreshold = 50;

    public static LbConfig Default { get; } = new(LoadBalancingPolicies.RoundRobin, HashingOptions.Default, [HashKey.SourceIp], DefaultPanicThreshold);
}

/// <summary>Reads a service's <c>lb</c> section.</summary>
internal static class LbConfigReader
{
    public static LbConfig Read(YamlFieldReader reader, YamlNode? node, string servicePath)
    {
        if (node is null)
        {
            return LbConfig.Default;
        }

        var path = $"{servicePath}.lb";
        var fields = reader.Mapping(node, path, "policy", "hash", "minRingSize", "maxRingSize", "tableSize", "hashBalanceFactor", "panicThreshold");
        if (fields is null)
        {
            return LbConfig.Default;
        }

        var policy = reader.String(fields, path, "policy", required: false, node) ?? LoadBalancingPolicies.RoundRobin;
        if (!LoadBalancingPolicies.IsKnown(policy))
        {
            reader.Error(fields["policy"], $"{path}.policy", $"unknown policy '{policy}'; expected one of: {string.Join(", ", LoadBalancingPolicies.Names)}");
        }

        var defaults = HashingOptions.Default;
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

        IReadOnlyList<HashKey> keys = [HashKey.SourceIp];
        if (fields.TryGetValue("hash", out var hashNode))
        {
            keys = HashKeyReader.Read(reader, hashNode, $"{path}.hash");
            if (LoadBalancingPolicies.IsKnown(policy) && !LoadBalancingPolicies.IsHashPolicy(policy))
            {
                reader.Error(hashNode, $"{path}.hash", $"policy {policy} does not hash; use ring_hash or maglev, or remove 'hash'");
            }
        }

        var panicThreshold = reader.Int(fields, path, "panicThreshold", LbConfig.DefaultPanicThreshold, 0, 100);
        return new LbConfig(policy, hashing, keys, panicThreshold);
    }
}
