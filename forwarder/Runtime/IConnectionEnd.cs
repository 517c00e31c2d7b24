using Forwarder.Metrics;

namespace Forwarder.Runtime;

/// <summary>
/// The listener that accepted a connection, for a handler that ends the connection itself: the
/// L4 handler, whose spliced connections end on a splicer thread with no managed frame waiting
/// for them (two frames, about 390 bytes, for every idle connection).
/// </summary>
internal interface IConnectionEnd
{
    /// <summary>Reports what went wrong with the connection; ends nothing.</summary>
    void Failed(ClientConnection client, string listener, Exception failure);

    /// <summary>Closes the connection and gives its room back (budget, counts, tracker): a second call for the same connection does nothing; never throws.</summary>
    void End(ClientConnection client, ListenerMetrics metrics);
}
