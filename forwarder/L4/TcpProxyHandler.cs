using System.Net;
using System.Net.Sockets;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;
using Forwarder.LoadBalancing.Health;
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
    IConnectionFactory dialer,
    ConnectionTracker tracker,
    TimeProvider time,
    ILogger<TcpProxyHandler> logger,
    SocketSplicer? splicer)
{
    public async Task HandleAsync(ClientConnection client, ListenerModel listener, ListenerMetrics listenerMetrics, bool directSend, CancellationToken stopping)
    {
        var service = listener.Service!;
        client.IdleTimeout = service.Config.IdleTimeout;
        var connected = await ConnectAsync(service, client.Client, stopping).ConfigureAwait(false);
        if (connected is not var (upstream, endpoint))
        {
            service.Metrics.AttemptsExhausted();
            LogNoEndpoint(logger, client.Client.ConnectionId, listener.Config.Name, service.Config.Name);
            return;
        }

        service.Metrics.UpstreamOpened();
        try
        {
            await new TcpProxySession(client, upstream, listenerMetrics, service.Metrics, tracker).RunAsync(splicer, directSend).ConfigureAwait(false);
        }
        finally
        {
            endpoint.State.End();
            service.Metrics.UpstreamClosed();
            await upstream.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<(ConnectionContext Connection, UpstreamEndpoint Endpoint)?> ConnectAsync(ServiceModel service, ConnectionContext client, CancellationToken stopping)
    {
        var endpoints = service.Endpoints;
        var balancer = service.Balancer;
        var attempts = Math.Min(service.Config.ConnectAttempts, endpoints.Length);

        // The hash policies pick by client address, so a client keeps landing on one endpoint.
        var keyHash = service.HashesSourceIp ? SourceAddressHash(client) : null;
        var index = keyHash is { } key ? balancer.Pick(key) : balancer.Pick();
        if (index < 0)
        {
            service.Metrics.NoneAvailable();
            LogNoneAvailable(logger, service.Config.Name);
            return null;
        }

        HashSet<int>? tried = null;
        for (var attempt = 0; attempt < attempts && !stopping.IsCancellationRequested; attempt++)
        {
            if (tried is not null)
            {
                index = NextUntried(balancer, tried, index);
            }

            var endpoint = endpoints[index];
            endpoint.State.Begin();
            var started = time.GetTimestamp();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping, client.ConnectionClosed);
            timeout.CancelAfter(service.Config.ConnectTimeout);
            ConnectFailure failure;
            try
            {
                var connection = await dialer.ConnectAsync(endpoint.Config.EndPoint, timeout.Token).ConfigureAwait(false);
                service.Metrics.ConnectLatency.Record(time.GetElapsedTime(started));
                ServiceHealth.ReportSuccess(endpoint.Health);
                return (connection, endpoint);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested && !client.ConnectionClosed.IsCancellationRequested)
            {
                failure = ConnectFailure.Timeout;
            }
            catch (OperationCanceledException)
            {
                endpoint.State.End();
                return null;
            }
            catch (Exception ex) when (ex is not SocketException)
            {
                endpoint.State.End();
                throw;
            }
            catch (SocketException ex)
            {
                failure = ex.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => ConnectFailure.Refused,
                    SocketError.TimedOut => ConnectFailure.Timeout,
                    SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostNotFound or SocketError.TryAgain => ConnectFailure.Unreachable,
                    _ => ConnectFailure.Other,
                };
            }

            endpoint.State.End();
            service.Metrics.ConnectFailed(failure);
            service.Health.ReportFailure(endpoint.Health);
            LogConnectFailed(logger, service.Config.Name, endpoint.Config.Address, failure, attempt + 1, attempts);
            (tried ??= []).Add(index);
        }

        return null;
    }

    /// <summary>
    /// A retry goes to the next endpoint not yet tried, whatever the policy would repeat:
    /// preferably one health lets take traffic, else any untried one.
    /// </summary>
    private static int NextUntried(ServiceBalancer balancer, HashSet<int> tried, int last)
    {
        var fallback = -1;
        for (var step = 1; step <= balancer.Count; step++)
        {
            var candidate = (last + step) % balancer.Count;
            if (tried.Contains(candidate))
            {
                continue;
            }

            if (balancer.Takes(candidate))
            {
                return candidate;
            }

            if (fallback < 0)
            {
                fallback = candidate;
            }
        }

        return fallback;
    }

    private static ulong? SourceAddressHash(ConnectionContext client)
        => client.RemoteEndPoint is IPEndPoint { Address: var address } ? AddressHash.Of(address) : null;

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Service {Service}: connecting to {Endpoint} failed ({Failure}), attempt {Attempt} of {Attempts}")]
    private static partial void LogConnectFailed(ILogger logger, string service, string endpoint, ConnectFailure failure, int attempt, int attempts);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Service {Service}: no endpoint is available (all unhealthy or ejected, and panicThreshold is 0); connection closed")]
    private static partial void LogNoneAvailable(ILogger logger, string service);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Connection {ConnectionId} on listener {Listener} closed: no endpoint of service {Service} could be reached")]
    private static partial void LogNoEndpoint(ILogger logger, string connectionId, string listener, string service);
}
