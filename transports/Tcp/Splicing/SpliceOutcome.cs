namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>How a spliced pair of sockets ended.</summary>
public enum SpliceOutcome
{
    /// <summary>Both sides sent their FIN and every byte was delivered.</summary>
    Completed,

    /// <summary>One side reset (or vanished); the other side is to be reset too.</summary>
    Reset,
}

/// <summary>Told about every chunk forwarded, and about the end, on the splicer's thread: keep it cheap and non-blocking.</summary>
public interface ISpliceObserver
{
    void Forwarded(bool toUpstream, int bytes);

    /// <summary>
    /// The pair ended: both descriptors are closed and their budget released. Lets the owner of a
    /// splice finish its bookkeeping without an async frame waiting on
    /// <see cref="SplicedConnection.Completion"/> for the connection's whole life; an observer
    /// that awaits the completion has nothing to do here.
    /// </summary>
    void Ended(SpliceOutcome outcome)
    {
    }
}
