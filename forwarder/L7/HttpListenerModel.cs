using Forwarder.Configuration;
using Forwarder.L7.Routing;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.L7;

/// <summary>What an http listener serves with, swapped whole on reload: its settings, routes and access log.</summary>
internal sealed class HttpListenerModel(HttpListenerConfig config, RouteTable<RouteModel> routes, AccessLog? accessLog)
{
    public HttpListenerConfig Config { get; } = config;

    public RouteTable<RouteModel> Routes { get; } = routes;

    public AccessLog? AccessLog { get; } = accessLog;

    public static HttpListenerModel Create(ListenerConfig listener, IReadOnlyDictionary<string, ServiceModel> services, ForwarderMetrics metrics, AccessLog? accessLog)
    {
        var http = listener.Http!;
        var routes = http.Routes.Select(r => new RouteModel(r, services, metrics.Route(listener.Name, r.Name))).ToArray();
        return new HttpListenerModel(http, new RouteTable<RouteModel>(routes, r => r.Config.Match), accessLog);
    }
}
