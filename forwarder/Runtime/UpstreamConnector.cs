using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.L7.Upstream;
using Forwarder.LoadBalancing.Health;
using Forwarder.Metrics;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>A connection to one endpoint of a service, counted in that endpoint's in-flight work until released.</summary>
/// <param name="Reused">Taken from the endpoint's keep-alive pool rather than dialled.</param>
internal readonly record struct UpstreamLease(ConnectionContext Connection, UpstreamEndpoint Endpoint, int Index, bool Reused);

/// <summary>
/// Opens connections to a service's endpoints for both the L4 and the L7 path: the endpoint the
/// balancer picked, or when it refuses or times out, the next untried ones, up to the service's
/// connectAttempts. Every failure is counted and logged; those that are the endpoint's fault are
/// reported to health (outlier detection), those that are this node's end the attempts; every
/// success tells health the endpoint is reachable.
/// </summary>
internal sealed partial class UpstreamConnector(IConnectionFactory dialer, TimeProvider time, ILogger<UpstreamConnector> logger)
{
    private readonly LogThrottle _throttle = new();

    /// <param name="index">The endpoint the balancer picked.</param>
    /// <param name="tried">Endpoints already used by this request (a retry); those are skipped and the ones tried here added.</param>
    /// <param name="pooled">Take an idle connection from the endpoint's keep-alive pool, or dial one for it (L7), instead of always dialling (L4).</param>
    /// <param name="fresh">With <paramref name="pooled"/>, dial a new connection for the pool even when an idle one waits (the resend after a stale one, whose idle siblings may be as stale).</param>
    /// <returns>A lease whose endpoint has begun one unit of in-flight work; null when every attempt failed or the caller gave up.</returns>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<UpstreamLease?> ConnectAsync(ServiceModel service, int index, HashSet<int> tried, bool pooled, CancellationToken cancellationToken, bool fresh = false)
    {
        var balancer = service.Balancer;
        var attempts = Math.Min(service.Config.ConnectAttempts, service.Endpoints.Length - tried.Count);
        for (var attempt = 0; attempt < attempts && !cancellationToken.IsCancellationRequested; attempt++)
        {
            if (tried.Contains(index))
            {
                index = balancer.NextUntried(tried, index);
                if (index < 0)
                {
                    return null;
                }
            }

            var endpoint = service.Endpoints[index];
            tried.Add(index);
            endpoint.State.Begin();
            if (pooled && !fresh && await endpoint.Pool.TakeIdleAsync().ConfigureAwait(false) is { } idle)
            {
                return new UpstreamLease(idle, endpoint, index, Reused: true);
            }

            var started = time.GetTimestamp();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(service.Config.ConnectTimeout);
            ConnectFailure failure;
            try
            {
                var connection = pooled
                    ? await endpoint.Pool.DialAsync(timeout.Token).ConfigureAwait(false)
                    : await dialer.ConnectAsync(endpoint.Config.EndPoint, timeout.Token).ConfigureAwait(false);
                service.Metrics.ConnectLatency.Record(time.GetElapsedTime(started));
                ServiceHealth.ReportSuccess(endpoint.Health);
                return new UpstreamLease(connection, endpoint, index, Reused: false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                failure = ConnectFailure.Timeout;
            }
            catch (OperationCanceledException)
            {
                endpoint.State.End();
                return null;
            }
            catch (UpstreamPoolFullException)
            {
                // Full, not failing: health is not told, and the next endpoint is tried.
                endpoint.State.End();
                service.Metrics.PoolFull();
                continue;
            }
            catch (Exception ex) when (ex is not SocketException)
            {
                endpoint.State.End();
                throw;
            }
            catch (SocketException ex)
            {
                failure = Classify(ex.SocketErrorCode);
            }

            endpoint.State.End();
            service.Metrics.ConnectFailed(failure);
            if (failure == ConnectFailure.Local)
            {
                // Out of descriptors or ports here: the endpoint is not to blame, so health is not
                // told, and any other endpoint would fail the same way, so none is tried.
                if (_throttle.TryLog(service.Config.Name, "#local", out var held))
                {
                    LogConnectFailedLocally(logger, service.Config.Name, endpoint.Config.Address, held);
                }

                return null;
            }

            service.Health.ReportFailure(endpoint.Health);
            if (_throttle.TryLog(service.Config.Name, endpoint.Config.Address, out var more))
            {
                LogConnectFailed(logger, service.Config.Name, endpoint.Config.Address, failure, more);
            }
        }

        return null;
    }

    /// <summary>
    /// Sorts a failed dial by whose fault it is. The local ones are raised before a SYN leaves
    /// (by socket() or connect() itself): no descriptor (EMFILE, ENFILE), no buffer or memory
    /// (ENOBUFS, ENOMEM), no free local port or address (EADDRNOTAVAIL, EADDRINUSE).
    /// </summary>
    internal static ConnectFailure Classify(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => ConnectFailure.Refused,
        SocketError.TimedOut => ConnectFailure.Timeout,
        SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostNotFound or SocketError.TryAgain => ConnectFailure.Unreachable,
        SocketError.AccessDenied => ConnectFailure.Denied,
        SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable or SocketError.AddressNotAvailable or SocketError.AddressAlreadyInUse => ConnectFailure.Local,
        _ => ConnectFailure.Other,
    };

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Service {Service}: connecting to {Endpoint} failed ({Failure}); the next endpoint is tried if attempts are left ({Suppressed} more failures since the last such line)")]
    private static partial void LogConnectFailed(ILogger logger, string service, string endpoint, ConnectFailure failure, long suppressed);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "Service {Service}: could not dial {Endpoint}: this node is out of file descriptors, socket buffers or local ports; the endpoint is not marked as failing and the client is closed ({Suppressed} more since the last such line)")]
    private static partial void LogConnectFailedLocally(ILogger logger, string service, string endpoint, long suppressed);
}
