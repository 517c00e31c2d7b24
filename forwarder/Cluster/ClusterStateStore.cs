using System.Net;
using System.Text.Json;
using Forwarder.Configuration;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging;

namespace Forwarder.Cluster;

/// <summary>
/// The cluster state the running config is built with, and the merge of it into the file's
/// config. Starts from the cache file when there is one, so a node that restarts while the
/// control plane is away serves what it last knew.
/// </summary>
internal sealed partial class ClusterStateStore
{
    private readonly ILogger<ClusterStateStore> _logger;
    private ClusterState _state = ClusterState.Empty;
    private byte[] _json = [];

    public ClusterStateStore(ConfigSource source, ILogger<ClusterStateStore> logger)
    {
        _logger = logger;
        if (source.Initial.Cluster?.Kubernetes.CacheFile is not { } cache)
        {
            return;
        }

        try
        {
            if (ClusterCache.Read(cache) is { } state)
            {
                Set(state);
                FromCache = true;
                LogCacheLoaded(logger, cache, state.Services.Count, state.EndpointCount);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            LogCacheUnreadable(logger, cache, ex.Message);
        }
    }

    public ClusterState State => Volatile.Read(ref _state);

    /// <summary>The state served was read from the cache file and not yet replaced by one from the API server.</summary>
    public bool FromCache { get; private set; }

    /// <summary>Makes <paramref name="state"/> current; false when it equals the current one.</summary>
    /// <param name="json">The state serialized, what the cache file gets.</param>
    public bool TrySet(ClusterState state, out byte[] json)
    {
        json = ClusterCache.Serialize(state);
        FromCache = false;
        if (json.AsSpan().SequenceEqual(Volatile.Read(ref _json)))
        {
            return false;
        }

        Set(state);
        return true;
    }

    /// <summary>
    /// The file's config with the discovered services added: a TCP port's ClusterIPs become its
    /// VIPs, a UDP port's its UDP VIPs (named NAMESPACE/NAME:PORT/udp). A service a listener
    /// names that is not discovered (yet) gets no endpoints, so
    /// connections to it are refused until it is. Discovered endpoints keep their topology
    /// (nodeName, zone) and discovered services get the file's default locality.
    /// </summary>
    public ForwarderConfig Merge(ForwarderConfig file)
    {
        if (file.Cluster is null)
        {
            return file;
        }

        var state = State;
        var zone = LearnZone(file.Locality, state);
        var lb = LbConfig.Default with { Locality = WithZone(file.Locality?.Default, zone) };
        var services = new Dictionary<string, ServiceConfig>(StringComparer.Ordinal);
        foreach (var (name, service) in file.Services)
        {
            services[name] = zone is not null && service.Lb.Locality is { Zone: null } unplaced
                ? service with { Lb = service.Lb with { Locality = unplaced with { Zone = zone } } }
                : service;
        }

        foreach (var service in state.Services)
        {
            var udp = service.Protocol == "UDP";
            var vips = service.ClusterIps.Select(ip => IPAddress.TryParse(ip, out var address) ? new IPEndPoint(address, service.Port) : null).OfType<IPEndPoint>().ToArray();
            services[service.Name] = ToServiceConfig(service.Name, lb, service.AppProtocol, service.Endpoints.Where(e => e.Ready).Select(ToEndpoint)) with
            {
                Vips = udp ? null : vips,
                UdpVips = udp ? vips : null,
                AppProtocol = udp ? null : service.AppProtocol,
            };
        }

        foreach (var name in ServiceReferences.Used(file).Where(n => !services.ContainsKey(n)))
        {
            services[name] = ToServiceConfig(name, lb, null, []);
        }

        var merged = file with { Services = services };
        return zone is null ? merged : merged with { Locality = file.Locality! with { Zone = zone, Default = lb.Locality } };
    }

    /// <summary>
    /// This node's zone when nothing configured it: the downward API cannot pass a node's labels,
    /// but every EndpointSlice endpoint on this node carries the zone.
    /// </summary>
    private static string? LearnZone(LocalityConfig? locality, ClusterState state)
        => locality is { Zone: null, Node: { } node }
            ? state.Services.SelectMany(s => s.Endpoints).FirstOrDefault(e => e.NodeName == node && e.Zone is not null)?.Zone
            : null;

    private static ServiceLocality? WithZone(ServiceLocality? locality, string? zone)
        => zone is not null && locality is { Zone: null } ? locality with { Zone = zone } : locality;

    private void Set(ClusterState state)
    {
        Volatile.Write(ref _json, ClusterCache.Serialize(state));
        Volatile.Write(ref _state, state);
    }

    private static ServiceConfig ToServiceConfig(string name, LbConfig lb, string? appProtocol, IEnumerable<EndpointConfig> endpoints) => new(
        name,
        lb,
        HealthCheck: null,
        OutlierDetection: null,
        ConnectTimeout: TimeSpan.FromSeconds(5),
        ConnectAttempts: 3,
        IdleTimeout: TimeSpan.FromHours(1),
        appProtocol is "kubernetes.io/h2c" or "grpc" ? UpstreamHttpConfig.Default with { Version = HttpVersion.Version20 } : UpstreamHttpConfig.Default,
        [.. endpoints],
        Origin: ServiceOrigin.Kubernetes);

    private static EndpointConfig ToEndpoint(ClusterEndpoint endpoint) => new(endpoint.Address, IPEndPoint.Parse(endpoint.Address), 1, endpoint.NodeName, endpoint.Zone);

    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Serving the cluster state cached in {Path} ({Services} service ports, {Endpoints} endpoints) until the API server answers")]
    private static partial void LogCacheLoaded(ILogger logger, string path, int services, int endpoints);

    [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "Cannot read the cluster cache {Path}; starting without it: {Reason}")]
    private static partial void LogCacheUnreadable(ILogger logger, string path, string reason);
}
