using Forwarder.LoadBalancing.Locality;

namespace Forwarder.Configuration;

/// <summary>What an endpoint shares with this node to sit on a nearer priority level.</summary>
internal enum LocalityScope
{
    Node,
    Zone,
}

/// <summary>
/// Where this node runs (the <c>locality</c> section, else the NODE_NAME and NODE_ZONE
/// variables a DaemonSet sets from the downward API), and the locality services get by default.
/// </summary>
/// <param name="Default">The locality of services that do not set <c>lb.locality</c>; null when off by default.</param>
internal sealed record LocalityConfig(string? Node, string? Zone, ServiceLocality? Default)
{
    public const string NodeVariable = "NODE_NAME";
    public const string ZoneVariable = "NODE_ZONE";

    public static IReadOnlyList<LocalityScope> DefaultLevels { get; } = [LocalityScope.Node, LocalityScope.Zone];
}

/// <summary>
/// A service's locality-aware balancing, resolved: this node's place, and the levels its
/// endpoints sort into. Level i holds endpoints matching this node on <c>Levels[i]</c> (and not
/// on an earlier one); the rest make the last level.
/// </summary>
/// <param name="Node">This node's name. With neither it nor a zone known (no NODE_NAME outside a pod, as for <c>--check</c>) every endpoint is on the last level: balancing as without locality.</param>
/// <param name="Zone">This node's zone; when neither configured nor set in the environment, discovery learns it from the endpoints on this node.</param>
/// <param name="OverprovisioningFactor">Percent, as Envoy's: 140 keeps a level's traffic until fewer than 72% of its endpoints are available.</param>
internal sealed record ServiceLocality(string? Node, string? Zone, IReadOnlyList<LocalityScope> Levels, int OverprovisioningFactor = PriorityLoad.DefaultOverprovisioningFactor)
{
    public int LevelOf(EndpointConfig endpoint)
    {
        for (var level = 0; level < Levels.Count; level++)
        {
            var (mine, theirs) = Levels[level] == LocalityScope.Node ? (Node, endpoint.Node) : (Zone, endpoint.Zone);
            if (mine is not null && string.Equals(mine, theirs, StringComparison.Ordinal))
            {
                return level;
            }
        }

        return Levels.Count;
    }

    /// <summary>The level names as /config and the metrics show them: the scopes, then "other".</summary>
    public string LevelName(int level) => level < Levels.Count ? Levels[level] == LocalityScope.Node ? "node" : "zone" : "other";

    public bool SameAs(ServiceLocality other)
        => Node == other.Node && Zone == other.Zone && OverprovisioningFactor == other.OverprovisioningFactor && Levels.SequenceEqual(other.Levels);
}
