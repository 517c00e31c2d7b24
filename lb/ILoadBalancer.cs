namespace Forwarder.LoadBalancing;

/// <summary>
/// Picks endpoints from one fixed, immutable endpoint set. Built when the set changes, then used
/// concurrently by every connection; a pick never allocates.
/// </summary>
public interface ILoadBalancer
{
    /// <summary>Returns the index of the chosen endpoint in the set the balancer was built for.</summary>
    int Pick();

    /// <summary>
    /// Picks for a request key's stable hash: hash policies map equal keys to the same endpoint;
    /// the others ignore the key.
    /// </summary>
    int Pick(ulong keyHash) => Pick();
}
