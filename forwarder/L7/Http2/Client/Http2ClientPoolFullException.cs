namespace Forwarder.L7.Http2.Client;

/// <summary>
/// An open gave up while every connection of the pool was at its server's stream limit and the
/// pool had its <see cref="Http2ClientOptions.MaxConnections"/>: a wait for room on this side,
/// not something the server did. A cancellation, so callers that only look for those still see one.
/// </summary>
internal sealed class Http2ClientPoolFullException(string message, CancellationToken cancellationToken) : OperationCanceledException(message, cancellationToken)
{
    public Http2ClientPoolFullException(int limit, CancellationToken cancellationToken)
        : this($"Every one of the pool's {limit} HTTP/2 connections was at its stream limit until the open gave up.", cancellationToken)
    {
    }
}
