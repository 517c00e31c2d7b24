using System.Net;
using System.Net.Sockets;
using Forwarder.LoadBalancing;
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
        var attempts = Math.Min(service.Config.ConnectAttempts, endpoints.Length);
        var keyHash = LoadBalancingPolicies.IsHashPolicy(service.Config.Policy) ? SourceAddressHash(client) : null;
        HashSet<int>? tried = null;
        for (var attempt = 0; attempt < attempts && !stopping.IsCancellationRequested; attempt++)
        {
            // The hash policies pick by client address, so a client keeps landing on one endpoint.
            var index = keyHash is { } key ? service.Balancer.Pick(key) : service.Balancer.Pick();
            if (tried is not null)
            {
                // Retries go to an endpoint not yet tried, whatever the policy would repeat.
                while (tried.Contains(index))
                {
                    index = (index + 1) % endpoints.Length;
                }
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
            LogConnectFailed(logger, service.Config.Name, endpoint.Config.Address, failure, attempt + 1, attempts);
            (tried ??= []).Add(index);
        }

        return null;
    }

    private static ulong? SourceAddressHash(ConnectionContext client)
    {
        if (client.RemoteEndPoint is not IPEndPoint { Address: var address })
        {
            return null;
        }

        // An IPv4 client on a dual-stack listener hashes as the IPv4 address it is.
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        return address.TryWriteBytes(bytes, out var written) ? XxHash64.Hash(bytes[..written]) : null;
    }

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Service {Service}: connecting to {Endpoint} failed ({Failure}), attempt {Attempt} of {Attempts}")]
    private static partial void LogConnectFailed(ILogger logger, string service, string endpoint, ConnectFailure failure, int attempt, int attempts);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Connection {ConnectionId} on listener {Listener} closed: no endpoint of service {Service} could be reached")]
    private static partial void LogNoEndpoint(ILogger logger, string connectionId, string listener, string service);
}
