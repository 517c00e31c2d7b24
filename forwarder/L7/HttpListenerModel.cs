using Forwarder.Configuration;
using Forwarder.L7.Routing;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Tls;

namespace Forwarder.L7;

/// <summary>What an http listener serves with, swapped whole on reload: its settings, routes, access log and TLS.</summary>
internal sealed class HttpListenerModel(HttpListenerConfig config, RouteTable<RouteModel> routes, AccessLog? accessLog, TlsTerminator? tls)
{
    public HttpListenerConfig Config { get; } = config;

    public RouteTable<RouteModel> Routes { get; } = routes;

    public AccessLog? AccessLog { get; } = accessLog;

    /// <summary>Terminates TLS on accepted connections; null for a plain-text listener.</summary>
    public TlsTerminator? Tls { get; } = tls;

    public static HttpListenerModel Create(ListenerConfig listener, IReadOnlyDictionary<string, ServiceModel> services, ForwarderMetrics metrics, AccessLog? accessLog, TlsTerminator? tls)
    {
        var http = listener.Http!;
        var routes = http.Routes.Select(r => new RouteModel(r, services, metrics.Route(listener.Name, r.Name))).ToArray();
        return new HttpListenerModel(http, new RouteTable<RouteModel>(routes, r => r.Config.Match), accessLog, tls);
    }
}
