using Forwarder.Configuration;
using Forwarder.LoadBalancing;
using Forwarder.Metrics;

namespace Forwarder.Runtime;

/// <summary>One endpoint of a service: as configured, plus the balancer's live view of it.</summary>
internal sealed record UpstreamEndpoint(EndpointConfig Config, LoadBalancerEndpoint State);

/// <summary>
/// A service ready for traffic: its endpoints and a balancer built for exactly that set.
/// Immutable; a reload builds a new one and listeners switch to it for new connections.
/// </summary>
internal sealed class ServiceModel
{
    private ServiceModel(ServiceConfig config, UpstreamEndpoint[] endpoints, ILoadBalancer balancer, ServiceMetrics metrics, LoadGroup group)
    {
        Group = group;
        Config = config;
        Endpoints = endpoints;
        Balancer = balancer;
        Metrics = metrics;
    }

    public ServiceConfig Config { get; }

    /// <summary>In-flight connections across the service's endpoints, kept across reloads like the endpoints' own counts.</summary>
    public LoadGroup Group { get; }

    public UpstreamEndpoint[] Endpoints { get; }

    public ILoadBalancer Balancer { get; }

    public ServiceMetrics Metrics { get; }

    /// <summary>
    /// Builds the model, carrying over the in-flight counts of endpoints that the previous model
    /// of this service also had, so least-request keeps seeing connections opened before a reload.
    /// </summary>
    public static ServiceModel Create(ServiceConfig config, ServiceModel? previous, ServiceMetrics metrics)
    {
        var group = previous?.Group ?? new LoadGroup();
        var endpoints = config.Endpoints
            .Select(e =>
            {
                var kept = previous?.Endpoints.FirstOrDefault(p => p.Config.Address == e.Address && p.Config.Weight == e.Weight);
                return new UpstreamEndpoint(e, kept?.State ?? new LoadBalancerEndpoint(e.Address, e.Weight, group));
            })
            .ToArray();
        var balancer = LoadBalancingPolicies.Create(config.Policy, [.. endpoints.Select(e => e.State)], hashing: config.Hashing);
        return new ServiceModel(config, endpoints, balancer, metrics, group);
    }
}

/// <summary>What one listener does with a connection, swapped whole on reload.</summary>
internal sealed record ListenerModel(ListenerConfig Config, ServiceModel? Service);
