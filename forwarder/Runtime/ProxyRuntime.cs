using System.Net;
using Forwarder.Cluster;
using Forwarder.Configuration;
using Forwarder.Echo;
using Forwarder.L4;
using Forwarder.L7;
using Forwarder.L7.Http2;
using Forwarder.Metrics;
using Forwarder.Transports.Tcp;
using Forwarder.Udp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>
/// Owns the running listeners and services. Applying a config is all-or-nothing: every new
/// listener is bound before anything changes, and if one cannot be, the old config stays.
/// Shutdown stops accepting, then drains open connections up to the drain deadline.
/// </summary>
internal sealed partial class ProxyRuntime(
    ConfigSource source,
    IConnectionListenerFactory listenerFactory,
    IConnectionFactory dialer,
    HttpConnectionEngine httpEngine,
    TcpProxyHandler tcpHandler,
    Http1ProxyHandler httpHandler,
    Http2Front http2,
    EchoHandler echoHandler,
    UdpListeners udpListeners,
    AccessLogs accessLogs,
    ConnectionTracker tracker,
    ConnectionBudget budget,
    TypeInitFaults faults,
    ForwarderMetrics metrics,
    ClusterStateStore cluster,
    TimeProvider time,
    ILogger<ProxyRuntime> logger,
    ILogger<HealthLog> healthLogger) : IHostedService, IDisposable
{
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private readonly IConnectionFactory _httpDialer = httpEngine.Dialer(dialer);
    private readonly CancellationTokenSource _stopping = new();
    private readonly RetiringPools _retiring = new();
    private readonly Dictionary<string, ListenerHost> _hosts = new(StringComparer.Ordinal);
    private Dictionary<string, ServiceModel> _services = new(StringComparer.Ordinal);
    private ForwarderConfig _config = source.Initial;

    /// <summary>The config as the file has it, before discovered services are merged in.</summary>
    private ForwarderConfig _fileConfig = source.Initial;
    private ReloadStatus _status = new(time.GetUtcNow(), true, [], [], null);
    private volatile bool _ready;
    private volatile bool _shutdownRequested;
    private volatile bool _draining;

    public ForwarderConfig Config => Volatile.Read(ref _config);

    public ReloadStatus Status => Volatile.Read(ref _status);

    public string? ConfigPath => source.Path;

    /// <summary>True once every listener is bound, false again from the moment shutdown is requested.</summary>
    public bool Ready => _ready && !_shutdownRequested && !_draining && faults.Broken is null;

    /// <summary>Types found broken for the life of the process (Ready is false once there is one).</summary>
    public TypeInitFaults Faults => faults;

    /// <summary>Shutdown was requested: listeners may still accept (the shutdown delay), or already drain.</summary>
    public bool ShuttingDown => _shutdownRequested || _draining;

    public bool Draining => _draining;

    /// <summary>The process-wide cap on proxied connections and what it counts now.</summary>
    public ConnectionBudget Budget => budget;

    /// <summary>The address each listener is bound to, by listener name (ports resolved when 0 was configured).</summary>
    public IReadOnlyDictionary<string, EndPoint> BoundEndPoints
    {
        get
        {
            lock (_hosts)
            {
                return _hosts.Values.Select(h => KeyValuePair.Create(h.Model.Config.Name, h.BoundEndPoint)).Concat(udpListeners.BoundEndPoints).ToDictionary(StringComparer.Ordinal);
            }
        }
    }

    public IReadOnlyDictionary<string, ServiceModel> Services => Volatile.Read(ref _services);

    /// <summary>The models the bound listeners serve with now.</summary>
    public IReadOnlyList<ListenerModel> ListenerModels
    {
        get
        {
            lock (_hosts)
            {
                return [.. _hosts.Values.Select(h => h.Model)];
            }
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await WarmUpAndDeriveLimitAsync().ConfigureAwait(false);
        await ApplyAsync(source.Initial, cancellationToken).ConfigureAwait(false);
        LogDescriptorLimit(logger, FileDescriptorLimit.InitialSoft, FileDescriptorLimit.Soft, FileDescriptorLimit.Hard, budget.MaxConnections, source.Initial.Limits?.MaxConnections is null ? "derived" : "limits.maxConnections", _derivedMaxConnections);
        Volatile.Write(ref _status, new ReloadStatus(time.GetUtcNow(), true, [], [], time.GetUtcNow()));
        _ready = true;
    }

    /// <summary>Reads the config file again and applies it; a bad file leaves the running config untouched.</summary>
    public async Task<bool> ReloadAsync(CancellationToken cancellationToken)
    {
        if (source.Path is null || _draining)
        {
            return false;
        }

        var attempted = time.GetUtcNow();
        try
        {
            var config = ConfigLoader.LoadFile(source.Path);
            var warnings = RestartOnlyChanges.Between(Config, config);
            if (!await ApplyAsync(config, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }

            Volatile.Write(ref _status, new ReloadStatus(attempted, true, [], warnings, time.GetUtcNow()));
            metrics.ReloadSucceeded();
            foreach (var warning in warnings)
            {
                LogRestartNeeded(logger, warning);
            }

            LogReloaded(logger, source.Path, config.Listeners.Count, config.Services.Count);
            return true;
        }
        catch (Exception ex) when (ex is ConfigException or ListenerBindException)
        {
            var errors = ex is ConfigException config ? config.Errors.Select(e => e.ToString()).ToArray() : [ex.Message];
            Volatile.Write(ref _status, new ReloadStatus(attempted, false, errors, [], Status.AppliedAt));
            metrics.ReloadFailed();
            LogReloadFailed(logger, source.Path, string.Join(Environment.NewLine, errors));
            return false;
        }
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _retiring.Dispose();
        _applyLock.Dispose();
    }

    /// <summary>
    /// Applies the file's config merged with the cluster state discovery has now; false when
    /// shutdown began first and nothing was changed (<paramref name="file"/> null: the running file config).
    /// </summary>
    private async Task<bool> ApplyAsync(ForwarderConfig? file, CancellationToken cancellationToken)
    {
        await _applyLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_draining)
            {
                return false;
            }

            file ??= _fileConfig;
            var config = cluster.Merge(file);
            var previous = Volatile.Read(ref _services);
            var used = ServiceReferences.Used(config);
            var services = config.Services.Where(s => used.Contains(s.Key)).ToDictionary(
                s => s.Key,
                s => CreateService(s.Value, previous.GetValueOrDefault(s.Key), config.Intercept?.Mark),
                StringComparer.Ordinal);
            var models = CreateModels(config, services);
            var udpAdded = udpListeners.Bind(config, models);
            var udpVips = UdpVipTargets(config, models);
            Dictionary<System.Net.IPEndPoint, Interception.InterceptUdpListeners.Pair> udpVipsAdded;
            List<ListenerHost> added;
            try
            {
                udpVipsAdded = InterceptUdp.Bind(udpVips, config.Source);
            }
            catch
            {
                UdpListeners.Abandon(udpAdded);
                throw;
            }

            try
            {
                added = await BindNewListenersAsync(config, models, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                UdpListeners.Abandon(udpAdded);
                Interception.InterceptUdpListeners.Abandon(udpVipsAdded);
                throw;
            }

            // Nothing below can fail: the new config is committed.
            Volatile.Write(ref _services, services);
            Volatile.Write(ref _config, config);
            _fileConfig = file;
            budget.MaxConnections = config.Limits?.MaxConnections ?? _derivedMaxConnections;
            foreach (var (name, old) in previous)
            {
                var successor = services.GetValueOrDefault(name);
                await old.RetireAsync(successor, _retiring).ConfigureAwait(false);
                if (successor is null)
                {
                    old.Health.Dispose();
                }
            }

            foreach (var service in services.Values)
            {
                service.Activate();
            }

            var wanted = config.Listeners.ToDictionary(l => l.BindingKey, StringComparer.Ordinal);
            List<ListenerHost> removed = [];
            lock (_hosts)
            {
                foreach (var (key, host) in _hosts)
                {
                    if (wanted.ContainsKey(key))
                    {
                        host.Model = models[key];
                        host.DirectSend = config.Tcp.DirectSend;
                    }
                    else
                    {
                        removed.Add(host);
                    }
                }

                foreach (var host in removed)
                {
                    _hosts.Remove(host.Model.Config.BindingKey);
                }

                foreach (var host in added)
                {
                    _hosts[host.Model.Config.BindingKey] = host;
                    host.Start();
                }
            }

            await Task.WhenAll(removed.Select(h => h.StopAsync())).ConfigureAwait(false);
            await udpListeners.CommitAsync(models, udpAdded, config.Intercept?.Mark).ConfigureAwait(false);
            await InterceptUdp.CommitAsync(udpVips, udpVipsAdded, config.Intercept?.Mark).ConfigureAwait(false);
            await accessLogs.RetainAsync(config.Listeners.Select(l => l.Http?.AccessLog).OfType<string>().ToHashSet(StringComparer.Ordinal)).ConfigureAwait(false);
            await ApplyInterceptRulesAsync(config, models).ConfigureAwait(false);
            return true;
        }
        finally
        {
            _applyLock.Release();
        }
    }

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Reloaded {Path}: {Listeners} listeners, {Services} services")]
    private static partial void LogReloaded(ILogger logger, string path, int listeners, int services);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "Reload of {Path} rejected; the running config stays in effect:\n{Errors}")]
    private static partial void LogReloadFailed(ILogger logger, string path, string errors);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "{Warning}")]
    private static partial void LogRestartNeeded(ILogger logger, string warning);
}
