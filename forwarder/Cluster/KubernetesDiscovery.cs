using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Cluster;

/// <summary>
/// Watches Services and EndpointSlices and, once both are listed, turns every burst of changes
/// (coalesced for <see cref="Coalesce"/>) into a new <see cref="ClusterState"/>: persisted to the
/// cache file and applied through the same path a config file reload takes. Runs only with a
/// <c>cluster.kubernetes</c> section; the section is read at start (changing it needs a restart).
/// </summary>
internal sealed partial class KubernetesDiscovery(
    ConfigSource source,
    ClusterStateStore store,
    ProxyRuntime runtime,
    ForwarderMetrics metrics,
    TimeProvider time,
    ILogger<KubernetesDiscovery> logger) : IHostedService, IDisposable
{
    private static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(200);

    private readonly SemaphoreSlim _changed = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private KubernetesApiClient? _api;
    private Task _running = Task.CompletedTask;

    private DiscoveryMetrics Discovery => metrics.Discovery;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (source.Initial.Cluster?.Kubernetes is not { } config)
        {
            return Task.CompletedTask;
        }

        Discovery.Enable();
        Discovery.Discovered(store.State.Services.Count, store.State.EndpointCount, store.FromCache);
        try
        {
            _api = KubernetesApiClient.Create(config);
        }
        catch (InvalidOperationException ex)
        {
            // Not fatal: the cached state (if any) and the file's services still serve.
            LogNoApiServer(logger, ex.Message);
            return Task.CompletedTask;
        }

        string?[] namespaces = config.Namespaces.Count == 0 ? [null] : [.. config.Namespaces];
        var services = namespaces.Select(ns => new Reflector<KubeService>(_api, ResourceKind<KubeService>.Services, ns, Discovery, Changed, time, logger)).ToArray();
        var slices = namespaces.Select(ns => new Reflector<EndpointSlice>(_api, ResourceKind<EndpointSlice>.EndpointSlices, ns, Discovery, Changed, time, logger)).ToArray();
        var stopping = _stopping.Token;
        _running = Task.WhenAll([
            .. services.Select(r => Task.Run(() => r.RunAsync(stopping), CancellationToken.None)),
            .. slices.Select(r => Task.Run(() => r.RunAsync(stopping), CancellationToken.None)),
            ApplyChangesAsync(services, slices, stopping),
        ]);
        LogStarted(logger, _api.Server, config.Namespaces.Count == 0 ? "all namespaces" : string.Join(", ", config.Namespaces));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _running.ConfigureAwait(false);
    }

    public void Dispose()
    {
        _api?.Dispose();
        _stopping.Dispose();
        _changed.Dispose();
    }

    private void Changed() => _changed.Release();

    private async Task ApplyChangesAsync(Reflector<KubeService>[] services, Reflector<EndpointSlice>[] slices, CancellationToken stopping)
    {
        try
        {
            while (true)
            {
                await _changed.WaitAsync(stopping).ConfigureAwait(false);
                await Task.Delay(Coalesce, time, stopping).ConfigureAwait(false);
                while (_changed.CurrentCount > 0)
                {
                    await _changed.WaitAsync(stopping).ConfigureAwait(false);
                }

                // Until both kinds are listed everywhere, a state built now would lack endpoints it
                // has (or a cached one would lose them): keep what is served.
                if (!services.All(r => r.Synced) || !slices.All(r => r.Synced))
                {
                    continue;
                }

                var state = ClusterStateBuilder.Build(services.SelectMany(r => r.Snapshot()), slices.SelectMany(r => r.Snapshot()));
                var updated = store.TrySet(state, out var json);
                Discovery.Discovered(state.Services.Count, state.EndpointCount, fromCache: false);
                if (!updated)
                {
                    continue;
                }

                Persist(json);
                await runtime.ApplyClusterAsync(stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private void Persist(byte[] json)
    {
        if (source.Initial.Cluster?.Kubernetes.CacheFile is not { } path)
        {
            return;
        }

        try
        {
            ClusterCache.Write(path, json);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogCacheWriteFailed(logger, path, ex.Message);
        }
    }

    [LoggerMessage(EventId = 904, Level = LogLevel.Information, Message = "Discovering Kubernetes services and endpoint slices from {Server} ({Namespaces})")]
    private static partial void LogStarted(ILogger logger, Uri server, string namespaces);

    [LoggerMessage(EventId = 905, Level = LogLevel.Error, Message = "Kubernetes discovery cannot start: {Reason}")]
    private static partial void LogNoApiServer(ILogger logger, string reason);

    [LoggerMessage(EventId = 906, Level = LogLevel.Warning, Message = "Cannot write the cluster cache {Path}; the state is applied anyway: {Reason}")]
    private static partial void LogCacheWriteFailed(ILogger logger, string path, string reason);
}
