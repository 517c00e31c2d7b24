using System.Collections.Frozen;
using System.Net;
using Forwarder.Configuration;
using Forwarder.L7;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.Interception;

/// <summary>
/// The intercept listener's map from original destination (VIP) to what serves it, immutable and
/// built with each applied config, so reloads and discovery swap it whole. An http listener that
/// names a VIP serves it with its routes; otherwise the VIP's service does, through the L7 path
/// when its appProtocol is http, h2c or grpc (one catch-all route), or L4 otherwise.
/// </summary>
internal sealed class InterceptTable
{
    private readonly FrozenDictionary<IPEndPoint, ListenerModel> _targets;

    private InterceptTable(FrozenDictionary<IPEndPoint, ListenerModel> targets, InterceptConfig config)
    {
        _targets = targets;
        Config = config;
    }

    public InterceptConfig Config { get; }

    /// <summary>Every VIP caught, for the rules.</summary>
    public IEnumerable<IPEndPoint> Vips => _targets.Keys;

    public ListenerModel? Find(IPEndPoint destination) => _targets.GetValueOrDefault(destination);

    /// <param name="models">The other listeners' models, by binding key.</param>
    public static InterceptTable Create(ForwarderConfig config, InterceptConfig intercept, IReadOnlyDictionary<string, ServiceModel> services, IReadOnlyDictionary<string, ListenerModel> models, ForwarderMetrics metrics)
    {
        var targets = new Dictionary<IPEndPoint, ListenerModel>();

        // Discovered services first, so the file's own services, then its http listeners, win a VIP they share.
        foreach (var service in services.Values.OrderBy(s => s.Config.Origin == ServiceOrigin.File ? 1 : 0))
        {
            if (service.Config.Vips is not { Count: > 0 } vips)
            {
                continue;
            }

            var model = InterceptConfigReader.IsHttp(service.Config.AppProtocol)
                ? HttpModel(intercept.Listener, service, services, metrics)
                : new ListenerModel(intercept.Listener with { Protocol = ListenerProtocol.Tcp, Service = service.Config.Name }, service, null);
            foreach (var vip in vips)
            {
                targets[vip] = model;
            }
        }

        foreach (var listener in config.Listeners)
        {
            foreach (var vip in listener.Vips ?? [])
            {
                targets[vip] = models[listener.BindingKey];
            }
        }

        return new InterceptTable(targets.ToFrozenDictionary(), intercept);
    }

    /// <summary>An http model with one route, everything to <paramref name="service"/>, with the default http settings.</summary>
    private static ListenerModel HttpModel(ListenerConfig interceptListener, ServiceModel service, IReadOnlyDictionary<string, ServiceModel> services, ForwarderMetrics metrics)
    {
        var route = new RouteConfig(service.Config.Name, new RouteMatch(null, null, [], []), [new RouteBackend(service.Config.Name, 1)], RouteConfig.DefaultTimeout, RetryPolicy.Default);
        var settings = new HttpListenerConfig(
            Http2: true,
            Http1Limits.Default,
            HttpListenerConfig.DefaultHeaderTimeout,
            HttpListenerConfig.DefaultKeepAliveTimeout,
            MaxBodySize: null,
            AccessLog: null,
            [route]);
        var listener = interceptListener with { Protocol = ListenerProtocol.Http, Http = settings };
        return new ListenerModel(listener, null, HttpListenerModel.Create(listener, services, metrics, null, null));
    }
}
