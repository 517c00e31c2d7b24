using Forwarder.Configuration;
using Forwarder.L7;
using Forwarder.L7.Upstream;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.LoadBalancing.Health;
using Forwarder.LoadBalancing.Locality;
using Forwarder.Metrics;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Runtime;

/// <summary>
/// One endpoint of a service: as configured, plus the balancer's and health's live view of it,
/// and its keep-alive pool for http listeners.
/// </summary>
internal sealed record UpstreamEndpoint(EndpointConfig Config, LoadBalancerEndpoint State, EndpointHealth Health, UpstreamConnectionPool Pool);

/// <summary>
/// A service ready for traffic: its endpoints, a balancer over those that are available, and the
/// active checks of its config. Built before a config is committed and activated after, so a
/// rejected reload leaves the running model untouched; a reload builds a new one and listeners
/// switch to it for new connections (and http listeners for new requests).
/// </summary>
internal sealed class ServiceModel : IAsyncDisposable
{
    /// <summary>How often idle keep-alive connections past their timeout are closed.</summary>
    private static readonly TimeSpan EvictionPeriod = TimeSpan.FromSeconds(1);

    private readonly ActiveHealthChecker? _checker;
    private readonly TimeProvider _time;
    private ITimer? _eviction;

    private ServiceModel(ServiceConfig config, UpstreamEndpoint[] endpoints, ServiceBalancer balancer, ServiceHealth health, ServiceMetrics metrics, LoadGroup group, ActiveHealthChecker? checker, TimeProvider time)
    {
        _time = time;
        Config = config;
        Endpoints = endpoints;
        Balancer = balancer;
        Health = health;
        Metrics = metrics;
        Group = group;
        _checker = checker;
        HashesRequests = LoadBalancingPolicies.IsHashPolicy(config.Lb.Policy);
        HashesSourceIp = HashesRequests && config.Lb.HashKeys.Contains(HashKey.SourceIp);
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

    /// <summary>Whether http requests pick by a key from <c>lb.hash</c> (a hash policy).</summary>
    public bool HashesRequests { get; }

    /// <summary>
    /// Builds the model, carrying over the in-flight counts, health and keep-alive pools of
    /// endpoints that the previous model of this service also had. <paramref name="mark"/> (the
    /// intercept section's) is set on the health checks' sockets, as on every socket to an endpoint.
    /// </summary>
    public static ServiceModel Create(ServiceConfig config, ServiceModel? previous, ServiceHealth health, ServiceMetrics metrics, IConnectionFactory dialer, TimeProvider time, int? mark = null)
    {
        var group = previous?.Group ?? new LoadGroup();
        var states = health.Resolve([.. config.Endpoints.Select(e => e.Address)]);
        var endpoints = config.Endpoints
            .Select((e, i) =>
            {
                var kept = previous?.Endpoints.FirstOrDefault(p => p.Config.Address == e.Address && p.Config.Weight == e.Weight);
                // Keyed by where and how it is dialled, not the address alone: an endpoint that moved
                // behind a node link, or got another connect timeout, must not keep the old connections.
                var pool = previous?.Endpoints.FirstOrDefault(p => p.Config.Address == e.Address && p.Config.EndPoint.Equals(e.EndPoint)
                        && previous.Config.Http == config.Http && previous.Config.ConnectTimeout == config.ConnectTimeout)?.Pool
                    ?? new UpstreamConnectionPool(e.EndPoint, dialer, config.Http.MaxIdleConnections, config.Http.KeepAliveTimeout, time, config.Http.MaxConnections, config.ConnectTimeout);
                return new UpstreamEndpoint(e, kept?.State ?? new LoadBalancerEndpoint(e.Address, e.Weight, group), states[i], pool);
            })
            .ToArray();
        var balancer = new ServiceBalancer(
            config.Lb.Policy,
            [.. endpoints.Select(e => e.State)],
            states,
            activeChecks: config.HealthCheck is not null,
            config.Lb.Hashing,
            config.Lb.PanicThreshold,
            locality: config.Lb.Locality is { } locality
                ? new LocalityOptions([.. config.Endpoints.Select(locality.LevelOf)], locality.OverprovisioningFactor, metrics.LocalityPicks)
                : null);
        var checker = config.HealthCheck is { } options
            ? new ActiveHealthChecker(options, health, [.. endpoints.Select(e => new HealthCheckTarget(e.Health, e.Config.EndPoint, e.Config.Address))], time, configureSocket: mark is { } value ? s => Transports.Tcp.SocketMark.Set(s, value) : null)
            : null;
        return new ServiceModel(config, endpoints, balancer, health, metrics, group, checker, time);
    }

    /// <summary>Makes this model the one its service's health reports to, and starts its checks. Called once its config is committed.</summary>
    public void Activate()
    {
        Health.Configure([.. Endpoints.Select(e => e.Health)], Config.OutlierDetection);
        Health.Subscribe(Balancer.Invalidate);
        _checker?.Start();
        _eviction = _time.CreateTimer(_ => _ = EvictIdleAsync(), null, EvictionPeriod, EvictionPeriod);
    }

    /// <summary>
    /// Stops the model's checks and idle eviction once a reload replaced it, and retires the pools
    /// its <paramref name="successor"/> did not carry over (null: the service is gone) into <paramref name="retiring"/>.
    /// </summary>
    public async ValueTask RetireAsync(ServiceModel? successor, RetiringPools retiring)
    {
        await StopAsync().ConfigureAwait(false);
        foreach (var endpoint in Endpoints)
        {
            if (successor is null || !successor.Endpoints.Any(e => ReferenceEquals(e.Pool, endpoint.Pool)))
            {
                retiring.Retire(endpoint.Pool);
            }
        }
    }

    /// <summary>Stops everything and closes every pool: the process is shutting down and the front has drained.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        foreach (var endpoint in Endpoints)
        {
            await endpoint.Pool.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async ValueTask StopAsync()
    {
        if (_eviction is not null)
        {
            await _eviction.DisposeAsync().ConfigureAwait(false);
        }

        if (_checker is not null)
        {
            await _checker.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Runs on the eviction timer; never throws, so the discarded task needs no observer.</summary>
    private async Task EvictIdleAsync()
    {
        foreach (var endpoint in Endpoints)
        {
            try
            {
                await endpoint.Pool.EvictIdleAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or Microsoft.AspNetCore.Connections.ConnectionResetException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
            {
                // Closing a connection that already failed: it is gone either way.
            }
        }
    }
}

/// <summary>What one listener does with a connection, swapped whole on reload.</summary>
/// <param name="Service">A tcp listener's service.</param>
/// <param name="Http">An http listener's routes, resolved to services.</param>
/// <param name="Intercept">The intercept listener's VIPs, each with the model its connections are served with.</param>
internal sealed record ListenerModel(ListenerConfig Config, ServiceModel? Service, HttpListenerModel? Http, Interception.InterceptTable? Intercept = null);
