using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tests.Cluster;

/// <summary>
/// A Kubernetes API server stand-in on loopback (plain HTTP): serves Services and EndpointSlices
/// as the API reference shapes them, lists with a resourceVersion, and watch streams of ADDED,
/// MODIFIED, DELETED, BOOKMARK and ERROR (410 Expired) events; the test drives every change. Also
/// the discovery documents kubectl reads first.
/// </summary>
internal sealed partial class FakeKubeApiServer : IAsyncDisposable
{
    private readonly object _lock = new();
    private readonly Dictionary<string, Dictionary<string, JsonObject>> _objects = new()
    {
        ["services"] = new(StringComparer.Ordinal),
        ["endpointslices"] = new(StringComparer.Ordinal),
    };

    private readonly List<Watch> _watches = [];

    /// <summary>Announced changes since the last compaction, replayed to watches that start from an older version.</summary>
    private readonly List<(long Version, string Kind, string Event)> _history = [];
    private readonly List<string> _requests = [];
    private readonly List<string> _authorizations = [];
    private WebApplication? _app;
    private long _version = 100;

    /// <summary>Watches asking for a version at or below this get 410 Gone.</summary>
    private long _compacted;

    private readonly X509Certificate2? _certificate;

    /// <param name="certificate">Serve HTTPS with it (for localhost), as a real API server does; plain HTTP when null.</param>
    public FakeKubeApiServer(int port = 0, X509Certificate2? certificate = null)
    {
        Port = port;
        _certificate = certificate;
    }

    public int Port { get; private set; }

    public Uri Url => _certificate is null ? new($"http://127.0.0.1:{Port}") : new($"https://localhost:{Port}");

    /// <summary>The Authorization header of every request.</summary>
    public IReadOnlyList<string> Authorizations
    {
        get
        {
            lock (_lock)
            {
                return [.. _authorizations];
            }
        }
    }

    /// <summary>Every request's path and query, in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_lock)
            {
                return [.. _requests];
            }
        }
    }

    public int OpenWatches
    {
        get
        {
            lock (_lock)
            {
                return _watches.Count;
            }
        }
    }

    public string CurrentVersion
    {
        get
        {
            lock (_lock)
            {
                return _version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }
    }

    public async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, Port, o =>
        {
            if (_certificate is not null)
            {
                o.UseHttps(_certificate);
            }
        }));
        _app = builder.Build();
        _app.Run(HandleAsync);
        await _app.StartAsync();
        Port = new Uri(_app.Urls.Single()).Port;
    }

    /// <summary>The API server goes away: watches are cut and connections refused until <see cref="StartAsync"/>.</summary>
    public async Task StopAsync()
    {
        DropWatches();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _app = null;
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>Creates or replaces an object, telling open watches (ADDED or MODIFIED) unless <paramref name="silently"/> (a change a watch missed).</summary>
    public void Put(JsonObject item, bool silently = false)
    {
        lock (_lock)
        {
            var kind = Plural(item);
            var key = Key(item);
            item["metadata"]!["resourceVersion"] = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var type = _objects[kind].ContainsKey(key) ? "MODIFIED" : "ADDED";
            _objects[kind][key] = item;
            if (!silently)
            {
                Send(kind, new JsonObject { ["type"] = type, ["object"] = item.DeepClone() });
            }
        }
    }

    public void Delete(JsonObject item, bool silently = false)
    {
        lock (_lock)
        {
            var kind = Plural(item);
            _objects[kind].Remove(Key(item));
            var deleted = item.DeepClone();
            deleted["metadata"]!["resourceVersion"] = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (!silently)
            {
                Send(kind, new JsonObject { ["type"] = "DELETED", ["object"] = deleted });
            }
        }
    }

    /// <summary>Sends every watch a BOOKMARK at a new resourceVersion (nothing changed meanwhile in what it watches).</summary>
    public string Bookmark()
    {
        lock (_lock)
        {
            var version = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);
            foreach (var kind in _objects.Keys)
            {
                Send(kind, new JsonObject
                {
                    ["type"] = "BOOKMARK",
                    ["object"] = new JsonObject
                    {
                        ["kind"] = kind == "services" ? "Service" : "EndpointSlice",
                        ["apiVersion"] = kind == "services" ? "v1" : "discovery.k8s.io/v1",
                        ["metadata"] = new JsonObject { ["resourceVersion"] = version },
                    },
                });
            }

            return version;
        }
    }

    /// <summary>Compacts history: open watches get an ERROR 410 Expired event, and so does any watch from an older version.</summary>
    public void Expire()
    {
        lock (_lock)
        {
            _compacted = _version;
            _history.Clear();
            foreach (var watch in _watches)
            {
                watch.Events.Writer.TryWrite(Gone(watch.Version).ToJsonString());
                watch.Events.Writer.TryComplete();
            }
        }
    }

    /// <summary>Ends every watch cleanly, as a server does when its timeoutSeconds run out.</summary>
    public void EndWatches()
    {
        lock (_lock)
        {
            foreach (var watch in _watches)
            {
                watch.Events.Writer.TryComplete();
            }
        }
    }

    /// <summary>Cuts every watch connection mid-stream (no clean end of the chunked body).</summary>
    public void DropWatches()
    {
        lock (_lock)
        {
            foreach (var watch in _watches)
            {
                watch.Context.Abort();
            }
        }
    }

    private static string Plural(JsonObject item) => item["kind"]!.GetValue<string>() == "Service" ? "services" : "endpointslices";

    private static string Key(JsonObject item) => $"{item["metadata"]!["namespace"]}/{item["metadata"]!["name"]}";

    private void Send(string kind, JsonObject watchEvent)
    {
        if (watchEvent["type"]!.GetValue<string>() != "BOOKMARK")
        {
            _history.Add((_version, kind, watchEvent.ToJsonString()));
        }

        foreach (var watch in _watches.Where(w => w.Kind == kind))
        {
            watch.Events.Writer.TryWrite(watchEvent.ToJsonString());
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? string.Empty;
        lock (_lock)
        {
            _requests.Add(path + context.Request.QueryString);
            _authorizations.Add(context.Request.Headers.Authorization.ToString());
        }

        if (FakeKubeDiscovery.Document(path) is { } document)
        {
            await WriteJsonAsync(context, document);
            return;
        }

        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var kind = segments.Length > 0 ? segments[^1] : string.Empty;
        string? ns = segments.Length >= 2 && segments[^3] == "namespaces" ? segments[^2] : null;
        if (kind is not ("services" or "endpointslices"))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        if (context.Request.Query["watch"] is ["true" or "1"])
        {
            await WatchAsync(context, kind, ns);
            return;
        }

        JsonObject list;
        lock (_lock)
        {
            list = new JsonObject
            {
                ["kind"] = kind == "services" ? "ServiceList" : "EndpointSliceList",
                ["apiVersion"] = kind == "services" ? "v1" : "discovery.k8s.io/v1",
                ["metadata"] = new JsonObject { ["resourceVersion"] = _version.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                ["items"] = new JsonArray([.. _objects[kind].Values.Where(o => ns is null || o["metadata"]!["namespace"]!.GetValue<string>() == ns).Select(o => o.DeepClone())]),
            };
        }

        await WriteJsonAsync(context, list.ToJsonString());
    }

    private async Task WatchAsync(HttpContext context, string kind, string? ns)
    {
        var version = long.Parse(context.Request.Query["resourceVersion"].ToString(), System.Globalization.CultureInfo.InvariantCulture);
        var watch = new Watch(kind, version, context, Channel.CreateUnbounded<string>());
        lock (_lock)
        {
            if (version <= _compacted)
            {
                watch.Events.Writer.TryWrite(Gone(version).ToJsonString());
                watch.Events.Writer.TryComplete();
            }
            else
            {
                foreach (var (_, _, line) in _history.Where(h => h.Kind == kind && h.Version > version))
                {
                    watch.Events.Writer.TryWrite(line);
                }

                _watches.Add(watch);
            }
        }

        context.Response.ContentType = "application/json";
        await context.Response.StartAsync();
        try
        {
            await foreach (var line in watch.Events.Reader.ReadAllAsync(context.RequestAborted))
            {
                if (ns is null || JsonNode.Parse(line)!["object"]!["metadata"]!["namespace"]?.GetValue<string>() is not { } objectNamespace || objectNamespace == ns)
                {
                    await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Dropped by the test or the client.
        }
        finally
        {
            lock (_lock)
            {
                _watches.Remove(watch);
            }
        }
    }

    private static async Task WriteJsonAsync(HttpContext context, string json)
    {
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(json);
    }

    private sealed record Watch(string Kind, long Version, HttpContext Context, Channel<string> Events);
}
