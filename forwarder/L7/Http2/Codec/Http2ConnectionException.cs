namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// A connection error (RFC 9113 5.4.1): the connection answers with GOAWAY carrying
/// <see cref="Code"/> and closes. Thrown only on a peer's misbehaviour, never on the hot path.
/// </summary>
internal sealed class Http2ConnectionException(Http2ErrorCode code, string message) : Exception(message)
{
    public Http2ErrorCode Code { get; } = code;
}
