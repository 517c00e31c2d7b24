namespace Forwarder.L7.Http2.Codec;

/// <summary>
/// A stream error (RFC 9113 5.4.2): only <see cref="StreamId"/> is reset with <see cref="Code"/>;
/// the connection and its other streams go on.
/// </summary>
internal sealed class Http2StreamException(int streamId, Http2ErrorCode code, string message) : Exception(message)
{
    public int StreamId { get; } = streamId;

    public Http2ErrorCode Code { get; } = code;
}
