namespace Forwarder.Cluster;

/// <summary>
/// What discovery knows of the cluster at one moment, immutable: every TCP or UDP port of every
/// Service with its endpoints. It is also what the cache file holds.
/// </summary>
internal sealed record ClusterState(IReadOnlyList<ClusterService> Services)
{
    public static ClusterState Empty { get; } = new([]);

    [System.Text.Json.Serialization.JsonIgnore]
    public int EndpointCount => Services.Sum(s => s.Endpoints.Count);
}

/// <summary>One port of a Service, as the forwarder service <see cref="Name"/> (NAMESPACE/NAME:PORT).</summary>
/// <param name="Protocol">TCP or UDP (SCTP ports are left out).</param>
/// <param name="PortName">The Service port's name (DNS SRV records are named after it); null when unnamed.</param>
internal sealed record ClusterService(
    string Name,
    string Namespace,
    string Service,
    IReadOnlyList<string> ClusterIps,
    int Port,
    string Protocol,
    string? AppProtocol,
    IReadOnlyList<ClusterEndpoint> Endpoints,
    string? PortName = null);

/// <param name="Address">IP:PORT, the port being the EndpointSlice's (the Service's targetPort resolved).</param>
internal sealed record ClusterEndpoint(string Address, string? NodeName, string? Zone, bool Ready, bool Serving, bool Terminating);
