using Forwarder.Configuration;
using Forwarder.Interception;
using Forwarder.L7;
using Forwarder.LoadBalancing.Health;
using Forwarder.Tls;
using Forwarder.Transports.Tcp;

namespace Forwarder.Runtime;

/// <content>What applying a config builds before it commits: services, listener models, bound listeners.</content>
internal sealed partial class ProxyRuntime
{
    /// <summary>The model of every listener of the config, by binding key; opens the access logs they name.</summary>
    private Dictionary<string, ListenerModel> CreateModels(ForwarderConfig config, Dictionary<string, ServiceModel> services)
    {
        var models = new Dictionary<string, ListenerModel>(StringComparer.Ordinal);
        foreach (var listener in config.Listeners)
        {
            HttpListenerModel? http = null;
            if (listener.Http is { } settings)
            {
                AccessLog? log;
                try
                {
                    log = settings.AccessLog is { } destination ? accessLogs.Get(destination) : null;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new ListenerBindException($"{config.Source}: listener '{listener.Name}' cannot open its access log {settings.AccessLog}: {ex.Message}", ex);
                }

                http = HttpListenerModel.Create(listener, services, metrics, log, CreateTls(config, listener, settings));
            }

            models[listener.BindingKey] = new ListenerModel(listener, listener.Service is null ? null : services[listener.Service], http);
        }

        if (config.Intercept is { } intercept)
        {
            var table = InterceptTable.Create(config, intercept, services, models, metrics);
            models[intercept.Listener.BindingKey] = new ListenerModel(intercept.Listener, null, null, table);
        }

        return models;
    }

    /// <summary>Loads the listener's certificates afresh, so files changed since the config was read are what gets served.</summary>
    private TlsTerminator? CreateTls(ForwarderConfig config, ListenerConfig listener, HttpListenerConfig settings)
    {
        if (listener.Tls is not { } tls)
        {
            return null;
        }

        try
        {
            return new TlsTerminator(tls, settings.Http2, listener.Name, metrics.Listener(listener.Name), logger);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new ListenerBindException($"{config.Source}: listener '{listener.Name}' cannot load its certificate: {ex.Message}", ex);
        }
    }

    private async Task<List<ListenerHost>> BindNewListenersAsync(ForwarderConfig config, Dictionary<string, ListenerModel> models, CancellationToken cancellationToken)
    {
        List<ListenerHost> added = [];
        foreach (var listener in config.Listeners.Where(l => l.Protocol != ListenerProtocol.Udp))
        {
            bool exists;
            lock (_hosts)
            {
                exists = _hosts.ContainsKey(listener.BindingKey);
            }

            if (exists)
            {
                continue;
            }

            try
            {
                var bound = listener.Protocol == ListenerProtocol.Intercept && config.Intercept is { Mode: InterceptMode.Tproxy } && listenerFactory is TcpListenerFactory tcp
                    ? await tcp.BindAsync(listener.EndPoint, TransparentSocket.Enable, cancellationToken).ConfigureAwait(false)
                    : await listenerFactory.BindAsync(listener.EndPoint, cancellationToken).ConfigureAwait(false);
                added.Add(new ListenerHost(bound, models[listener.BindingKey], tcpHandler, httpHandler, echoHandler, tracker, budget, faults, metrics, logger, _stopping.Token)
                {
                    DirectSend = config.Tcp.DirectSend,
                });
            }
            catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or UnauthorizedAccessException)
            {
                await Task.WhenAll(added.Select(h => h.StopAsync())).ConfigureAwait(false);
                throw new ListenerBindException($"{config.Source}: listener '{listener.Name}' cannot listen on {listener.Listen}: {ex.Message}", ex);
            }
        }

        return added;
    }

    private ServiceModel CreateService(ServiceConfig config, ServiceModel? previous, int? mark)
    {
        var health = previous?.Health ?? new ServiceHealth(time, new HealthLog(config.Name, healthLogger));
        return ServiceModel.Create(config, previous, health, metrics.Service(config.Name), _httpDialer, time, mark);
    }
}
