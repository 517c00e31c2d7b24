using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// A request on an upstream HTTP/2 connection failed: its stream was reset, or the connection
/// ended or refused it. <see cref="CanRetry"/> is true only when the server is known not to have
/// processed it (RFC 9113 8.7): the stream never opened, was above a GOAWAY's last stream id, or
/// was refused with REFUSED_STREAM.
/// </summary>
internal sealed class Http2ClientException(string message, Http2ErrorCode code, bool canRetry, Exception? inner = null) : Exception(message, inner)
{
    public Http2ErrorCode Code { get; } = code;

    public bool CanRetry { get; } = canRetry;

    /// <summary>The dial failed because the server took the connection but sent no SETTINGS in time (its own metric label and log reason).</summary>
    public bool SettingsTimedOut { get; init; }
}
