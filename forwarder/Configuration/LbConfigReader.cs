using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;
using YamlDotNet.RepresentationModel;

namespace Forwarder.Configuration;

/// <summary>
/// A service's load balancing as configured: the policy, the sizes and keys of the hash
/// policies, the share of endpoints below which health is ignored, and the locality levels.
/// </summary>
/// <param name="Locality">Endpoints nearer this node first; null when off.</param>
internal sealed record LbConfig(string Policy, HashingOptions Hashing, IReadOnlyList<HashKey> HashKeys, int PanicThreshold, ServiceLocality? Locality = null)
{
    /// <summary>Envoy's default panic threshold: half of the endpoints.</summary>
    public const int DefaultPanicThreshold = 50;

    public static LbConfig Default { get; } = new(LoadBalancingPolicies.RoundRobin, HashingOptions.Default, [HashKey.SourceIp], DefaultPanicThreshold);
}

/// <summary>Reads a service's <c>lb</c> section.</summary>
internal static class LbConfigReader
{
    /// <param name="locality">This node's place and the services' default locality.</param>
    public static LbConfig Read(YamlFieldReader reader, YamlNode? node, string servicePath, LocalityConfig locality)
    {
        var defaults = LbConfig.Default with { Locality = locality.Default };
        if (node is null)
        {
            return defaults;
        }

        var path = $"{servicePath}.lb";
        var fields = reader.Mapping(node, path, "policy", "hash", "minRingSize", "maxRingSize", "tableSize", "hashBalanceFactor", "panicThreshold", "locality");
        if (fields is null)
        {
            return defaults;
        }

        var policy = reader.String(fields, path, "policy", required: false, node) ?? LoadBalancingPolicies.RoundRobin;
        if (!LoadBalancingPolicies.IsKnown(policy))
        {
            reader.Error(fields["policy"], $"{path}.policy", $"unknown policy '{policy}'; expected one of: {string.Join(", ", LoadBalancingPolicies.Names)}");
        }

        var sizes = HashingOptions.Default;
        var hashing = new HashingOptions(
            MinRingSize: reader.Int(fields, path, "minRingSize", sizes.MinRingSize, 1, 8 * 1024 * 1024),
            MaxRingSize: reader.Int(fields, path, "maxRingSize", sizes.MaxRingSize, 1, 8 * 1024 * 1024),
            TableSize: reader.Int(fields, path, "tableSize", sizes.TableSize, 2, 5_000_011),
            BalanceFactor: reader.Int(fields, path, "hashBalanceFactor", sizes.BalanceFactor, 0, 10_000));
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
        var serviceLocality = fields.TryGetValue("locality", out var localityNode)
            ? LocalityConfigReader.ReadService(reader, localityNode, path, locality)
            : locality.Default;
        return new LbConfig(policy, hashing, keys, panicThreshold, serviceLocality);
    }
}
