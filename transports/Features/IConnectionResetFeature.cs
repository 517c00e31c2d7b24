namespace Forwarder.Transports.Features;

/// <summary>
/// Closes a connection with a reset (RST) instead of an orderly FIN, so a peer's reset can be
/// propagated to the other side of a proxied connection.
/// </summary>
public interface IConnectionResetFeature
{
    void Reset();
}
