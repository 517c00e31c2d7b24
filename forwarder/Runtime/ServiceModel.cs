using Forwarder.Configuration;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.LoadBalancing.Health;
using Forwarder.Metrics;

namespace Forwarder.Runtime;

/// <summary>One endpoint of a service: as configured, plus the balancer's and health's live view of it.</summary>
internal sealed record UpstreamEndpoint(EndpointConfig Config, LoadBalancerEndpoint State, EndpointHealth Health);

/// <summary>
/// A service ready for traffic: its endpoints, a balancer over those that are available, and the
/// active checks of its config. Built before a config is committed and activated after, so a
/// rejected reload leaves the running model untouched; a reload builds a new one and listeners
/// switch to it for new connections.
/// </summary>
internal sealed class ServiceModel : IAsyncDisposable
{
    private readonly ActiveHealthChecker? _checker;

    private ServiceModel(ServiceConfig config, UpstreamEndpoint[] endpoints, ServiceBalancer balancer, ServiceHealth health, ServiceMetrics metrics, LoadGroup group, ActiveHealthChecker? checker)
    {
        Config = config;
        Endpoints = endpoints;
        Balancer = balancer;
        Health = health;
        Metrics = metrics;
        Group = group;
        _checker = checker;
        HashesSourceIp = LoadBalancingPolicies.IsHashPolicy(config.Lb.Policy) && config.Lb.HashKeys.Contains(HashKey.SourceIp);
    }

    public ServiceConfig Config { get; }

    /// <summary>In-flight connections across the service's endpoints, kept across reloads like the endpoints' own counts.</summary>
    public LoadGroup Group { get; }

    public UpstreamEndpoint[] Endpoints { get; }

    public ServiceBalancer Balancer { get; }

    /// <summary>The service's endpoint health, kept across reloads.</summary>
    public ServiceHealth Health { get; }

    public ServiceMetrics Metrics { get; }

    /// <summary>Whether L4 connections pick by the client's address (a hash policy with sourceIp among its keys).</summary>
    public bool HashesSourceIp { get; }

    /// <summary>
    /// Builds the model, carrying over the in-flight counts and health of endpoints that the
    /// previous model of this service also had.
    /// </summary>
    public static ServiceModel Create(ServiceConfig config, ServiceModel? previous, ServiceHealth health, ServiceMetrics metrics, TimeProvider time)
    {
        var group = previous?.Group ?? new LoadGroup();
        var states = health.Resolve([.. config.Endpoints.Select(e => e.Address)]);
        var endpoints = config.Endpoints
            .Select((e, i) =>
            {
                var kept = previous?.Endpoints.FirstOrDefault(p => p.Config.Address == e.Address && p.Config.Weight == e.Weight);
                return new UpstreamEndpoint(e, kept?.State ?? new LoadBalancerEndpoint(e.Address, e.Weight, group), states[i]);
            })
            .ToArray();
        var balancer = new ServiceBalancer(
            config.Lb.Policy,
            [.. endpoints.Select(e => e.State)],
            states,
            activeChecks: config.HealthCheck is not null,
            config.Lb.Hashing,
            config.Lb.PanicThreshold);
        var checker = config.HealthCheck is { } options
            ? new ActiveHealthChecker(options, health, [.. endpoints.Select(e => new HealthCheckTarget(e.Health, e.Config.EndPoint, e.Config.Address))], time)
            : null;
        return new ServiceModel(config, endpoints, balancer, health, metrics, group, checker);
    }

    /// <summary>Makes this model the one its service's health reports to, and starts its checks. Called once its config is committed.</summary>
    public void Activate()
    {
        Health.Configure([.. Endpoints.Select(e => e.Health)], Config.OutlierDetection);
        Health.Subscribe(Balancer.Invalidate);
        _checker?.Start();
    }

    /// <summary>Stops the model's active checks.</summary>
    public ValueTask DisposeAsync() => _checker?.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>What one listener does with a connection, swapped whole on reload.</summary>
internal sealed record ListenerModel(ListenerConfig Config, ServiceModel? Service);
