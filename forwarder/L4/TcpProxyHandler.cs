using System.Net;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.L4;

/// <summary>
/// Serves a tcp listener's connection: picks an endpoint of the listener's service, dials it
/// (moving on to another endpoint when one refuses or times out), then splices the two.
/// </summary>
internal sealed partial class TcpProxyHandler(
    UpstreamConnector connector,
    ConnectionTracker tracker,
    ILogger<TcpProxyHandler> logger,
    SocketSplicer? splicer)
{
    private readonly LogThrottle _throttle = new();

    public async Task HandleAsync(ClientConnection client, ListenerModel listener, ListenerMetrics listenerMetrics, bool directSend, CancellationToken stopping)
    {
        if (await StartAsync(client, listener, listenerMetrics, directSend, stopping).ConfigureAwait(false) is not var (running, service, endpoint))
        {
            return;
        }

        try
        {
            await running.ConfigureAwait(false);
        }
        finally
        {
            endpoint.State.End();
            service.Metrics.UpstreamClosed();
        }
    }

    /// <summary>
    /// Dials and starts the session, which disposes the upstream connection: so neither this
    /// frame, done once the session runs, nor the one waiting for the session (which lives as
    /// long as the connection) holds it; a splice has no use for it once it has its socket.
    /// </summary>
    private async Task<(Task Running, ServiceModel Service, UpstreamEndpoint Endpoint)?> StartAsync(ClientConnection client, ListenerModel listener, ListenerMetrics listenerMetrics, bool directSend, CancellationToken stopping)
    {
        var service = listener.Service!;
        client.IdleTimeout = service.Config.IdleTimeout;
        var connected = await ConnectAsync(service, client, stopping).ConfigureAwait(false);
        if (connected is not var (upstream, endpoint))
        {
            service.Metrics.AttemptsExhausted();
            if (_throttle.TryLog(listener.Config.Name, service.Config.Name, out var more))
            {
                LogNoEndpoint(logger, listener.Config.Name, service.Config.Name, more);
            }

            return null;
        }

        service.Metrics.UpstreamOpened();
        try
        {
            return (new TcpProxySession(client, upstream, listenerMetrics, service.Metrics, tracker).RunAsync(splicer, directSend, disposeUpstream: true), service, endpoint);
        }
        catch
        {
            endpoint.State.End();
            service.Metrics.UpstreamClosed();
            throw;
        }
    }

    private async Task<(ConnectionContext Connection, UpstreamEndpoint Endpoint)?> ConnectAsync(ServiceModel service, ClientConnection client, CancellationToken stopping)
    {
        // The hash policies pick by client address, so a client keeps landing on one endpoint.
        var keyHash = service.HashesSourceIp ? SourceAddressHash(client.Client) : null;
        var index = keyHash is { } key ? service.Balancer.Pick(key) : service.Balancer.Pick();
        if (index < 0)
        {
            service.Metrics.NoneAvailable();
            if (_throttle.TryLog(service.Config.Name, "#none", out var more))
            {
                LogNoneAvailable(logger, service.Config.Name, more);
            }
            return null;
        }

        // The dial ends when the client is aborted (idle timeout, drain), through the hook that
        // aborts the upstream once there is one, or when the listener stops. A token source linked
        // to the client's ConnectionClosed would leave a registration (144 bytes) on the client's
        // token source for the connection's whole life. This one is never disposed (it has no
        // timer or wait handle to free), so an abort that comes after the dial cancels it harmlessly.
        var cancel = new CancellationTokenSource();
        client.AttachUpstream(_ => cancel.Cancel());
        using var stopped = stopping.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), cancel);
        var lease = await connector.ConnectAsync(service, index, [], pooled: false, cancel.Token).ConfigureAwait(false);
        return lease is { } connected ? (connected.Connection, connected.Endpoint) : null;
    }

    private static ulong? SourceAddressHash(ConnectionContext client)
        => client.RemoteEndPoint is IPEndPoint { Address: var address } ? AddressHash.Of(address) : null;

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Service {Service}: no endpoint is available (all unhealthy or ejected, and panicThreshold is 0); connection closed ({Suppressed} more since the last such line)")]
    private static partial void LogNoneAvailable(ILogger logger, string service, long suppressed);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Listener {Listener}: a connection was closed because no endpoint of service {Service} could be reached ({Suppressed} more since the last such line)")]
    private static partial void LogNoEndpoint(ILogger logger, string listener, string service, long suppressed);
}
