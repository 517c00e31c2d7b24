using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.Extensions.Logging;

namespace Forwarder.Udp;

/// <summary>
/// The running udp listeners. A config is applied in two steps like the tcp listeners: new
/// addresses are bound first (<see cref="Bind"/>, which fails the reload and leaves nothing bound
/// when one cannot be), then <see cref="CommitAsync"/> swaps in the new models, starts the new
/// listeners, stops the removed ones and ends the sessions whose endpoint is gone.
/// </summary>
internal sealed class UdpListeners(ForwarderMetrics metrics, TimeProvider time, ILogger<UdpListeners> logger)
{
    private readonly Dictionary<string, UdpListenerHost> _hosts = new(StringComparer.Ordinal);

    /// <summary>The address each udp listener is bound to, by listener name.</summary>
    public IEnumerable<KeyValuePair<string, EndPoint>> BoundEndPoints
    {
        get
        {
            lock (_hosts)
            {
                return [.. _hosts.Values.Select(h => KeyValuePair.Create(h.Model.Config.Name, (EndPoint)h.BoundEndPoint))];
            }
        }
    }

    /// <summary>Binds the udp listeners of <paramref name="config"/> not bound yet.</summary>
    /// <exception cref="ListenerBindException">One cannot be bound; those bound here are closed again.</exception>
    public List<UdpListenerHost> Bind(ForwarderConfig config, IReadOnlyDictionary<string, ListenerModel> models)
    {
        List<UdpListenerHost> added = [];
        foreach (var listener in config.Listeners.Where(l => l.Protocol == ListenerProtocol.Udp))
        {
            lock (_hosts)
            {
                if (_hosts.ContainsKey(listener.BindingKey))
                {
                    continue;
                }
            }

            try
            {
                var host = UdpListenerHost.Bind(models[listener.BindingKey], metrics, time, logger);
                host.UpstreamMark = config.Intercept?.Mark;
                added.Add(host);
            }
            catch (SocketException ex)
            {
                Abandon(added);
                throw new ListenerBindException($"{config.Source}: listener '{listener.Name}' cannot listen on udp {listener.Listen}: {ex.Message}", ex);
            }
        }

        return added;
    }

    /// <summary>Closes listeners bound for a config that was not applied.</summary>
    public static void Abandon(List<UdpListenerHost> added)
    {
        foreach (var host in added)
        {
            host.Abandon();
        }
    }

    /// <summary>Makes the committed config's udp listeners the running ones.</summary>
    /// <param name="mark">The intercept section's mark, which sockets to endpoints carry so the intercept rules pass them.</param>
    public async Task CommitAsync(IReadOnlyDictionary<string, ListenerModel> models, List<UdpListenerHost> added, int? mark)
    {
        List<UdpListenerHost> removed = [];
        lock (_hosts)
        {
            foreach (var (key, host) in _hosts)
            {
                if (models.TryGetValue(key, out var model))
                {
                    host.Model = model;
                    host.UpstreamMark = mark;
                    host.EndSessionsOfRemovedEndpoints();
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

        await Task.WhenAll(removed.Select(h => h.StopAsync(UdpSessionEnd.Reload))).ConfigureAwait(false);
    }

    /// <summary>Stops every udp listener: shutdown.</summary>
    public async Task StopAsync()
    {
        UdpListenerHost[] hosts;
        lock (_hosts)
        {
            hosts = [.. _hosts.Values];
            _hosts.Clear();
        }

        await Task.WhenAll(hosts.Select(h => h.StopAsync(UdpSessionEnd.Shutdown))).ConfigureAwait(false);
    }
}
