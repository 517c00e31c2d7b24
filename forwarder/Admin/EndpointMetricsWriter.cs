using Forwarder.Runtime;
using static Forwarder.Admin.PrometheusWriter;

namespace Forwarder.Admin;

/// <summary>Renders each endpoint's load and health, and each service's available share, as the balancers see them now.</summary>
internal static class EndpointMetricsWriter
{
    /// <summary>Writes the families, pausing after each service like <see cref="PrometheusWriter.Render"/>.</summary>
    public static IEnumerable<int> Render(MetricsText text, ProxyRuntime runtime)
    {
        var models = runtime.Services.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => s.Value).ToArray();
        Family(text, "forwarder_service_endpoints_available", "gauge", "Endpoints that health lets take traffic.");
        foreach (var service in models)
        {
            Sample(text, "forwarder_service_endpoints_available", $"service=\"{service.Config.Name}\"", service.Balancer.AvailableCount);
            yield return 0;
        }

        Family(text, "forwarder_service_panic", "gauge", "1 while fewer endpoints than panicThreshold are available and all of them take traffic.");
        foreach (var service in models)
        {
            Sample(text, "forwarder_service_panic", $"service=\"{service.Config.Name}\"", service.Balancer.Panic ? 1 : 0);
            yield return 0;
        }

        Family(text, "forwarder_lb_locality_picks_total", "counter", "Endpoint picks by locality level (node: this node, zone: this zone, other), for services that balance by locality.");
        foreach (var service in models)
        {
            for (var level = 0; service.Config.Lb.Locality is { } locality && level <= locality.Levels.Count; level++)
            {
                Sample(text, "forwarder_lb_locality_picks_total", $"service=\"{service.Config.Name}\",level=\"{locality.LevelName(level)}\"", service.Metrics.LocalityPicks[level]);
            }

            yield return 0;
        }

        // Lazy until enumerated: the families are written one after the other, in this order.
        IEnumerable<int>[] families =
        [
            EndpointFamily(text, models, "forwarder_endpoint_in_flight", "gauge", "Connections in flight per endpoint, as the load balancer sees them.", (_, e) => e.State.InFlight),
            EndpointFamily(text, models, "forwarder_endpoint_weight", "gauge", "Configured weight of the endpoint.", (_, e) => e.Config.Weight),
            EndpointFamily(text, models, "forwarder_endpoint_healthy", "gauge", "1 when health lets the endpoint take traffic (passing active checks, not ejected).", (s, e) => e.Health.IsAvailable(s.Config.HealthCheck is not null) ? 1 : 0),
            EndpointFamily(text, models, "forwarder_endpoint_ejected", "gauge", "1 while outlier detection has the endpoint ejected.", (_, e) => e.Health.Ejected ? 1 : 0),
            EndpointFamily(text, models, "forwarder_endpoint_ejections_total", "counter", "Times outlier detection ejected the endpoint.", (_, e) => e.Health.Ejections),
        ];
        foreach (var step in families.SelectMany(f => f))
        {
            yield return step;
        }

        Family(text, "forwarder_endpoint_health_checks_total", "counter", "Active health checks of the endpoint, by result.");
        foreach (var service in models.Where(s => s.Config.HealthCheck is not null))
        {
            foreach (var endpoint in service.Endpoints)
            {
                var labels = $"service=\"{service.Config.Name}\",endpoint=\"{endpoint.Config.Address}\"";
                Sample(text, "forwarder_endpoint_health_checks_total", $"{labels},result=\"passed\"", endpoint.Health.ChecksPassed);
                Sample(text, "forwarder_endpoint_health_checks_total", $"{labels},result=\"failed\"", endpoint.Health.ChecksFailed);
            }

            yield return 0;
        }
    }

    private static IEnumerable<int> EndpointFamily(MetricsText text, ServiceModel[] services, string name, string type, string help, Func<ServiceModel, UpstreamEndpoint, long> value)
    {
        Family(text, name, type, help);
        foreach (var service in services)
        {
            foreach (var endpoint in service.Endpoints)
            {
                Sample(text, name, $"service=\"{service.Config.Name}\",endpoint=\"{endpoint.Config.Address}\"", value(service, endpoint));
            }

            yield return 0;
        }
    }
}
