using System.Net.Sockets;
using Forwarder.L7.Http2.Client;
using Forwarder.L7.Http2.Codec;
using Forwarder.L7.Http2.Server;
using Forwarder.L7.Upstream;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Proxy;

/// <content>What a failed attempt was: whose fault, and whether it may go again.</content>
internal sealed partial class Http2ProxyHandler
{
    private static bool IsExchangeFailure(Exception ex)
        => ex is Http2ClientException or Http2ClientNoStreamsException or OperationCanceledException or IOException or SocketException or ConnectionResetException
            or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException;

    /// <summary>
    /// Whose fault a failed attempt was, as <see cref="Http2FailureClassifier"/> says for
    /// SocketsHttpHandler's: the client's side first, then a dial that failed, the route's
    /// timeout, and anything else a reset of a request already sent. A stream the upstream
    /// refused unprocessed (REFUSED_STREAM, above a GOAWAY's last stream) is <paramref name="refused"/>:
    /// health is not told, it goes again to the same endpoint, and past <see cref="MaxResends"/>
    /// counts as a failed connect (any request may go elsewhere).
    /// </summary>
    private static Http2Failure Classify(Exception ex, Http2ServerStream stream, Http2ProxyExchange exchange, bool timedOut, out bool refused)
    {
        refused = false;
        if (stream.Aborted.IsCancellationRequested || exchange.ClientGone)
        {
            return new(Http2FailureKind.ClientGone, 0);
        }

        if (exchange.BodyTooLarge)
        {
            return new(Http2FailureKind.ClientFault, 413);
        }

        if (exchange.BodyMismatch)
        {
            return new(Http2FailureKind.ClientFault, 400);
        }

        if (Find<SocketException>(ex) is { } socket)
        {
            var dial = UpstreamConnector.Classify(socket.SocketErrorCode);
            return new(dial == ConnectFailure.Local ? Http2FailureKind.LocalConnect : Http2FailureKind.Connect, 503, dial);
        }

        if (ex is ObjectDisposedException { ObjectName: var disposed } && (disposed == typeof(Http2ClientPool).FullName || disposed == typeof(UpstreamConnectionPool).FullName))
        {
            // A reload closed the endpoint's pool under this request: nothing the endpoint did.
            return new(Http2FailureKind.LocalConnect, 503);
        }

        if (ex is Http2ClientNoStreamsException)
        {
            // SETTINGS_MAX_CONCURRENT_STREAMS 0: the endpoint takes nothing, like a refused connect;
            // another endpoint may, and outlier detection must hear of it or it stays a black hole.
            return new(Http2FailureKind.Connect, 503, ConnectFailure.Refused);
        }

        if (ex is Http2ClientPoolFullException)
        {
            // The wait was for this node's own connections (http.maxConnections): no other
            // endpoint would do better for a request that timed out, and this one did nothing wrong.
            return new(Http2FailureKind.LocalConnect, 503);
        }

        if (timedOut)
        {
            return exchange.WaitingOnClient && !exchange.BodyDone ? new(Http2FailureKind.ClientFault, 408) : new(Http2FailureKind.Timeout, 504);
        }

        if (ex is Http2ClientException client)
        {
            if (client.CanRetry)
            {
                refused = true;
                return new(Http2FailureKind.Connect, 503);
            }

            if (client.Code is Http2ErrorCode.ConnectError or Http2ErrorCode.Http11Required)
            {
                return new(Http2FailureKind.Connect, 503, client.Code != Http2ErrorCode.ConnectError ? ConnectFailure.Other : client.SettingsTimedOut ? ConnectFailure.SettingsTimeout : ConnectFailure.Timeout);
            }
        }

        return new(Http2FailureKind.Reset, 502);
    }

    private static T? Find<T>(Exception ex)
        where T : Exception
    {
        for (Exception? inner = ex; inner is not null; inner = inner.InnerException)
        {
            if (inner is T found)
            {
                return found;
            }
        }

        return null;
    }
}
