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

    /// <summary>
    /// Serves the connection and ends it through <paramref name="end"/>: as the splice ends if it
    /// was spliced (this task completes once the splice starts, so no frame waits for an idle
    /// connection), else before this task completes. Never throws, so its task needs no observer.
    /// </summary>
    public async Task HandleAsync(ClientConnection client, ListenerModel listener, ListenerMetrics listenerMetrics, bool directSend, IConnectionEnd end, CancellationToken stopping)
    {
        var service = listener.Service!;
        try
        {
            client.IdleTimeout = service.Config.IdleTimeout;
            if (await ConnectAsync(service, client, stopping).ConfigureAwait(false) is var (upstream, endpoint))
            {
                service.Metrics.UpstreamOpened();
                if (await ProxyAsync(client, upstream, endpoint, listener, listenerMetrics, directSend, end).ConfigureAwait(false))
                {
                    return;
                }
            }
            else
            {
                service.Metrics.AttemptsExhausted();
                if (_throttle.TryLog(listener.Config.Name, service.Config.Name, out var more))
                {
                    LogNoEndpoint(logger, listener.Config.Name, service.Config.Name, more);
                }
            }
        }
        catch (Exception ex)
        {
            end.Failed(client, listener.Config.Name, ex);
        }

        end.End(client, listenerMetrics);
    }

    /// <summary>True when spliced: the session then ends the connection as the splice ends.</summary>
    private async Task<bool> ProxyAsync(ClientConnection client, ConnectionContext upstream, UpstreamEndpoint endpoint, ListenerModel listener, ListenerMetrics listenerMetrics, bool directSend, IConnectionEnd end)
    {
        var service = listener.Service!;
        var session = new TcpProxySession(client, upstream, listenerMetrics, service.Metrics, tracker);
        var start = SpliceStart.NotSpliceable;
        try
        {
            start = splicer is null ? SpliceStart.NotSpliceable : session.TrySplice(splicer, endpoint, end);
            if (start == SpliceStart.Spliced)
            {
                // Only once start says Spliced: the splice's end then does the counts, never the finally too.
                session.AttachSplice();
            }
            else if (start == SpliceStart.NotSpliceable)
            {
                await session.RunAsync(directSend).ConfigureAwait(false);
            }
        }
        finally
        {
            // Closes the upstream, or, its socket taken, frees only its own resources.
            try
            {
                await upstream.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (start == SpliceStart.Spliced)
            {
                // The splice ends the connection: this failure must not end it a second time.
                end.Failed(client, listener.Config.Name, ex);
            }
            finally
            {
                if (start != SpliceStart.Spliced)
                {
                    endpoint.State.End();
                    service.Metrics.UpstreamClosed();
                }
            }
        }

        return start == SpliceStart.Spliced;
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
