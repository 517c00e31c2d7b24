using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Forwarder.Metrics;
using Microsoft.Extensions.Logging;

namespace Forwarder.Cluster;

/// <summary>A kind of API object discovery lists and watches, and where.</summary>
/// <param name="ApiPrefix">api/v1 or apis/GROUP/VERSION.</param>
internal sealed record ResourceKind<T>(string Plural, string ApiPrefix, JsonTypeInfo<T> Item, JsonTypeInfo<KubeList<T>> List, Func<T, ObjectMeta?> Meta)
{
    public static ResourceKind<KubeService> Services { get; } = new("services", "api/v1", KubernetesJson.Default.KubeService, KubernetesJson.Default.KubeListKubeService, s => s.Metadata);

    public static ResourceKind<EndpointSlice> EndpointSlices { get; } = new("endpointslices", "apis/discovery.k8s.io/v1", KubernetesJson.Default.EndpointSlice, KubernetesJson.Default.KubeListEndpointSlice, s => s.Metadata);

    public string Path(string? @namespace) => @namespace is null ? $"/{ApiPrefix}/{Plural}" : $"/{ApiPrefix}/namespaces/{@namespace}/{Plural}";
}

/// <summary>
/// Keeps a local copy of one kind of object in one namespace (or all) the way client-go's
/// reflector does: list, then watch from the list's resourceVersion with bookmarks; a watch the
/// server ends is opened again from the last version seen, a 410 Gone (the version is too old)
/// lists again, and errors back off exponentially with jitter. Errors never clear the copy:
/// objects leave it only when the API server says they were deleted (or a relist lacks them).
/// </summary>
internal sealed partial class Reflector<T>(KubernetesApiClient api, ResourceKind<T> kind, string? @namespace, DiscoveryMetrics metrics, Action changed, TimeProvider time, ILogger logger)
    where T : class
{
    public static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly Dictionary<string, T> _objects = new(StringComparer.Ordinal);
    private readonly string _path = kind.Path(@namespace);
    private string? _version;
    private volatile bool _synced;

    /// <summary>True once the first list arrived; until then the copy says nothing about the cluster.</summary>
    public bool Synced => _synced;

    public List<T> Snapshot()
    {
        lock (_objects)
        {
            return [.. _objects.Values];
        }
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        var backoff = InitialBackoff;
        var listed = false;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (_version is null)
                {
                    await ListAsync(stopping).ConfigureAwait(false);
                    if (listed)
                    {
                        metrics.Relisted();
                    }

                    listed = true;
                    backoff = InitialBackoff;
                }

                if (await WatchAsync(stopping).ConfigureAwait(false))
                {
                    backoff = InitialBackoff;
                    continue;
                }

                // A watch that ended without a single event: do not spin on a server that closes at once.
                await Task.Delay(Jittered(backoff), time, stopping).ConfigureAwait(false);
                backoff = Next(backoff);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException or KubernetesApiException or OperationCanceledException)
            {
                if (ex is KubernetesApiException { Status: HttpStatusCode.Gone })
                {
                    _version = null;
                }

                metrics.Failed();
                var delay = Jittered(backoff);
                LogFailed(logger, kind.Plural, api.Server, delay.TotalMilliseconds, ex.Message);
                try
                {
                    await Task.Delay(delay, time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                backoff = Next(backoff);
            }
        }
    }

    private async Task ListAsync(CancellationToken stopping)
    {
        var list = await api.ListAsync(_path, kind.List, stopping).ConfigureAwait(false);
        lock (_objects)
        {
            _objects.Clear();
            foreach (var item in list.Items ?? [])
            {
                if (kind.Meta(item) is { } meta)
                {
                    _objects[Key(meta)] = item;
                }
            }
        }

        _version = list.Metadata?.ResourceVersion;
        _synced = true;
        metrics.Synced(time.GetUtcNow());
        changed();
    }

    /// <summary>Watches until the server ends the stream or asks for a relist; true when at least one event came.</summary>
    private async Task<bool> WatchAsync(CancellationToken stopping)
    {
        // Servers end watches after timeoutSeconds; a spread keeps a node's watches from all restarting together.
        var seconds = 300 + Random.Shared.Next(300);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(TimeSpan.FromSeconds(seconds + 30));
        var path = $"{_path}?watch=true&allowWatchBookmarks=true&timeoutSeconds={seconds}&resourceVersion={Uri.EscapeDataString(_version ?? string.Empty)}";
        using var response = await api.WatchAsync(path, deadline.Token).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(deadline.Token).ConfigureAwait(false);
        using var reader = new StreamReader(body);
        var events = false;
        while (await reader.ReadLineAsync(deadline.Token).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            events = true;
            metrics.Synced(time.GetUtcNow());
            if (!Apply(JsonSerializer.Deserialize(line, KubernetesJson.Default.WatchEvent)))
            {
                return true;
            }
        }

        metrics.WatchRestarted();
        return events;
    }

    /// <summary>Applies one watch event; false when the watch must end for a relist (410 Gone).</summary>
    private bool Apply(WatchEvent? watchEvent)
    {
        switch (watchEvent?.Type)
        {
            case "ADDED" or "MODIFIED" or "DELETED":
                var item = watchEvent.Object.Deserialize(kind.Item) ?? throw new JsonException($"a {watchEvent.Type} event without an object");
                if (kind.Meta(item) is not { } meta)
                {
                    throw new JsonException($"a {watchEvent.Type} event's object has no metadata");
                }

                lock (_objects)
                {
                    if (watchEvent.Type == "DELETED")
                    {
                        _objects.Remove(Key(meta));
                    }
                    else
                    {
                        _objects[Key(meta)] = item;
                    }
                }

                _version = meta.ResourceVersion ?? _version;
                changed();
                return true;
            case "BOOKMARK":
                _version = BookmarkVersion(watchEvent.Object) ?? _version;
                return true;
            case "ERROR":
                var status = watchEvent.Object.Deserialize(KubernetesJson.Default.KubeStatus);
                if (status?.Code == (int)HttpStatusCode.Gone)
                {
                    LogGone(logger, kind.Plural, status.Message ?? string.Empty);
                    _version = null;
                    return false;
                }

                throw new KubernetesApiException((HttpStatusCode)(status?.Code ?? 500), $"watch {_path}: {status?.Reason}: {status?.Message}");
            default:
                throw new JsonException($"unknown watch event type '{watchEvent?.Type}'");
        }
    }

    private static string? BookmarkVersion(JsonElement bookmark)
        => bookmark.TryGetProperty("metadata", out var metadata) && metadata.Deserialize(KubernetesJson.Default.ObjectMeta) is { ResourceVersion: { } version } ? version : null;

    private static string Key(ObjectMeta meta) => $"{meta.Namespace}/{meta.Name}";

    private static TimeSpan Next(TimeSpan backoff) => backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;

    /// <summary>Between half and all of the backoff, so nodes that lost the API server together do not return together.</summary>
    private static TimeSpan Jittered(TimeSpan backoff) => backoff * (0.5 + (Random.Shared.NextDouble() / 2));

    [LoggerMessage(EventId = 902, Level = LogLevel.Warning, Message = "Kubernetes {Kind} list/watch against {Server} failed; the last known state stays in effect, retrying in {DelayMs:F0} ms: {Reason}")]
    private static partial void LogFailed(ILogger logger, string kind, Uri server, double delayMs, string reason);

    [LoggerMessage(EventId = 903, Level = LogLevel.Information, Message = "Kubernetes {Kind} watch expired (410 Gone: {Reason}); listing again")]
    private static partial void LogGone(ILogger logger, string kind, string reason);
}
