namespace Forwarder.Transports.Quic;

/// <summary>A QUIC connection or stream failed: handshake, transport error, idle timeout or peer close.</summary>
internal sealed class QuicException(string message) : Exception(message);
