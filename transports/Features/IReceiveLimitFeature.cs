namespace Forwarder.Transports.Features;

/// <summary>
/// Caps each read from the connection's socket, so a consumer that cuts what it reads into frames
/// of at most that size (a yamux stream) gets whole frames with no remainder: a 64 KiB read into
/// frames of 64 KiB - 12 left a 12-byte frame, and a TLS record of its own, every time.
/// </summary>
public interface IReceiveLimitFeature
{
    /// <summary>
    /// The most one read takes from the socket; set it before reading, or as soon as the consumer is known.
    /// On a TCP connection a cap of a block less 12 bytes or under also frames the blocks received
    /// into from then on (12 bytes free in front: a yamux stream writes its header there, with no copy).
    /// </summary>
    int MaxReceiveSize { get; set; }
}
