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
    /// The file's config with the discovered TCP services added (UDP ports have no listener type
    /// yet). A service a listener names that is not discovered (yet) gets no endpoints, so
    /// connections to it are refused until it is.
    /// </summary>
    public ForwarderConfig Merge(ForwarderConfig file)
    {
        if (file.Cluster is null)
        {
            return file;
        }

        var services = new Dictionary<string, ServiceConfig>(file.Services, StringComparer.Ordinal);
        foreach (var service in State.Services.Where(s => s.Protocol == "TCP"))
        {
            services[service.Name] = ToServiceConfig(service.Name, service.AppProtocol, service.Endpoints.Where(e => e.Ready).Select(ToEndpoint)) with
            {
                Vips = [.. service.ClusterIps.Select(ip => IPAddress.TryParse(ip, out var address) ? new IPEndPoint(address, service.Port) : null).OfType<IPEndPoint>()],
                AppProtocol = service.AppProtocol,
            };
        }

        foreach (var name in ServiceReferences.Used(file).Where(n => !services.ContainsKey(n)))
        {
            services[name] = ToServiceConfig(name, null, []);
        }

        return file with { Services = services };
    }

    private void Set(ClusterState state)
    {
        Volatile.Write(ref _json, ClusterCache.Serialize(state));
        Volatile.Write(ref _state, state);
    }

    private static ServiceConfig ToServiceConfig(string name, string? appProtocol, IEnumerable<EndpointConfig> endpoints) => new(
        name,
        LbConfig.Default,
        HealthCheck: null,
        OutlierDetection: null,
        ConnectTimeout: TimeSpan.FromSeconds(5),
        ConnectAttempts: 3,
        IdleTimeout: TimeSpan.FromHours(1),
        appProtocol is "kubernetes.io/h2c" or "grpc" ? UpstreamHttpConfig.Default with { Version = HttpVersion.Version20 } : UpstreamHttpConfig.Default,
        [.. endpoints],
        Origin: ServiceOrigin.Kubernetes);

    private static EndpointConfig ToEndpoint(ClusterEndpoint endpoint) => new(endpoint.Address, IPEndPoint.Parse(endpoint.Address), 1);

    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Serving the cluster state cached in {Path} ({Services} service ports, {Endpoints} endpoints) until the API server answers")]
    private static partial void LogCacheLoaded(ILogger logger, string path, int services, int endpoints);

    [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "Cannot read the cluster cache {Path}; starting without it: {Reason}")]
    private static partial void LogCacheUnreadable(ILogger logger, string path, string reason);
}
