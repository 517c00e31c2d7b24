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

    private InterceptTable(FrozenDictionary<IPEndPoint, ListenerModel> targets, FrozenDictionary<IPEndPoint, ListenerModel> udpTargets, InterceptConfig config)
    {
        _targets = targets;
        UdpTargets = udpTargets;
        Config = config;
    }

    public InterceptConfig Config { get; }

    /// <summary>Every TCP VIP caught, for the rules.</summary>
    public IEnumerable<IPEndPoint> Vips => _targets.Keys;

    /// <summary>The udp listener model of each UDP VIP: its service, with the default udp session settings.</summary>
    public FrozenDictionary<IPEndPoint, ListenerModel> UdpTargets { get; }

    public ListenerModel? Find(IPEndPoint destination) => _targets.GetValueOrDefault(destination);

    /// <param name="models">The other listeners' models, by binding key.</param>
    public static InterceptTable Create(ForwarderConfig config, InterceptConfig intercept, IReadOnlyDictionary<string, ServiceModel> services, IReadOnlyDictionary<string, ListenerModel> models, ForwarderMetrics metrics)
    {
        var targets = new Dictionary<IPEndPoint, ListenerModel>();
        var udpTargets = new Dictionary<IPEndPoint, ListenerModel>();

        // Discovered services first, so the file's own services, then its http listeners, win a VIP they share.
        foreach (var service in services.Values.OrderBy(s => s.Config.Origin == ServiceOrigin.File ? 1 : 0))
        {
            foreach (var vip in service.Config.UdpVips ?? [])
            {
                udpTargets[vip] = new ListenerModel(UdpListener(vip, service.Config.Name), service, null);
            }

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

        return new InterceptTable(targets.ToFrozenDictionary(), udpTargets.ToFrozenDictionary(), intercept);
    }

    /// <summary>
    /// The udp listener a UDP VIP is redirected to: named after the VIP (its forwarder_udp_*
    /// series), bound to an ephemeral port of the VIP's family, with the udp listener defaults.
    /// </summary>
    private static ListenerConfig UdpListener(IPEndPoint vip, string service)
    {
        var any = vip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
        var name = $"{InterceptConfig.ListenerName}:{vip}/udp";
        var udp = new UdpListenerConfig(UdpListenerReader.DefaultIdleTimeout, UdpListenerReader.DefaultMaxSessions);
        return new ListenerConfig(name, name, new IPEndPoint(any, 0), ListenerProtocol.Udp, service, 0, null, Udp: udp);
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
