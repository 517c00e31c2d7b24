using System.Net.Sockets;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.L7.Upstream;

/// <summary>Whose fault a failed <see cref="SocketsHttpHandler"/> exchange was.</summary>
internal enum Http2FailureKind
{
    /// <summary>The client went away or broke its body off: there is nobody to answer.</summary>
    ClientGone,

    /// <summary>The client's body was too large, malformed or stalled past the listener's bodyTimeout: answered, never charged to the endpoint.</summary>
    ClientFault,

    /// <summary>Dialling failed on this node's side (out of descriptors, buffers or local ports): not the endpoint's fault, and any other would fail the same way.</summary>
    LocalConnect,

    /// <summary>Dialling the endpoint failed (refused, unreachable, connect timeout): nothing was sent.</summary>
    Connect,

    /// <summary>The route's timeout passed before the response head.</summary>
    Timeout,

    /// <summary>The stream or its connection broke after the request went out.</summary>
    Reset,
}

/// <summary>What the caller saw of the client's side when the exchange failed.</summary>
internal enum ClientSide
{
    /// <summary>Nothing wrong on the client's side: the failure was the upstream's or this node's.</summary>
    Fine,

    /// <summary>The client closed or reset its connection (or stream), or cut its body short.</summary>
    Gone,

    /// <summary>The body grew past the listener's maxBodySize.</summary>
    TooLarge,

    /// <summary>The body's framing was broken.</summary>
    Invalid,

    /// <summary>The client paused its body longer than the listener's bodyTimeout.</summary>
    Stalled,
}

/// <summary>A classified failure: its kind, the status the client gets, and for a failed dial, why.</summary>
internal readonly record struct Http2Failure(Http2FailureKind Kind, int Status, ConnectFailure? Dial = null)
{
    /// <summary>The failure as the retry rule sees it; null for one that is never retried (the client's, or this node's).</summary>
    public AttemptFailure? Attempt => Kind switch
    {
        Http2FailureKind.Connect => AttemptFailure.Connect,
        Http2FailureKind.Timeout => AttemptFailure.Timeout,
        Http2FailureKind.Reset => AttemptFailure.Reset,
        _ => null,
    };

    /// <summary>Whether the endpoint is to blame, so outlier detection is told.</summary>
    public bool UpstreamAtFault => Kind is Http2FailureKind.Connect or Http2FailureKind.Timeout or Http2FailureKind.Reset;
}

/// <summary>
/// The one reading of an exception from <see cref="SocketsHttpHandler"/> for both HTTP/2 handler
/// paths (HTTP/2 clients, and HTTP/1 clients of an HTTP/2 service), by whose fault it is. The
/// client's side is looked at first: a failure it caused is never the endpoint's. Then, as the
/// handler wraps them: a dial that failed (<see cref="HttpRequestError.ConnectionError"/> or
/// <see cref="HttpRequestError.NameResolutionError"/>, with the dialler's exception inside, or
/// the handler's connect timeout, a cancellation around a <see cref="TimeoutException"/>), split
/// like <see cref="UpstreamConnector.Classify"/> into this node's failures and the endpoint's; the
/// route's timeout; anything else is a reset of a request already sent. A stream refused unprocessed
/// (GOAWAY, REFUSED_STREAM) never shows here: the handler sends it again itself, as RFC 9113 8.7 allows.
/// </summary>
internal static class Http2FailureClassifier
{
    /// <param name="timedOut">The route's timeout cancelled the exchange.</param>
    /// <param name="client">What the caller saw of the client.</param>
    public static Http2Failure Classify(Exception ex, bool timedOut, ClientSide client)
    {
        switch (client)
        {
            case ClientSide.Gone:
                return new(Http2FailureKind.ClientGone, 0);
            case ClientSide.TooLarge:
                return new(Http2FailureKind.ClientFault, 413);
            case ClientSide.Invalid:
                return new(Http2FailureKind.ClientFault, 400);
            case ClientSide.Stalled:
                return new(Http2FailureKind.ClientFault, 408);
        }

        if (ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError } dial)
        {
            var failure = Find<SocketException>(dial) is { } socket ? UpstreamConnector.Classify(socket.SocketErrorCode)
                : Find<TimeoutException>(dial) is not null ? ConnectFailure.Timeout
                : dial.HttpRequestError == HttpRequestError.NameResolutionError ? ConnectFailure.Unreachable
                : ConnectFailure.Other;
            return new(failure == ConnectFailure.Local ? Http2FailureKind.LocalConnect : Http2FailureKind.Connect, 503, failure);
        }

        if (ex is OperationCanceledException { InnerException: TimeoutException } && !timedOut)
        {
            // The handler's connect timeout (the service's connectTimeout).
            return new(Http2FailureKind.Connect, 503, ConnectFailure.Timeout);
        }

        return ex is OperationCanceledException && timedOut ? new(Http2FailureKind.Timeout, 504) : new(Http2FailureKind.Reset, 502);
    }

    private static T? Find<T>(Exception ex)
        where T : Exception
    {
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is T found)
            {
                return found;
            }
        }

        return null;
    }
}
