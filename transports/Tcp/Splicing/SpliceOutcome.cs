namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>How a spliced pair of sockets ended.</summary>
public enum SpliceOutcome
{
    /// <summary>Both sides sent their FIN and every byte was delivered.</summary>
    Completed,

    /// <summary>One side reset (or vanished); the other side is to be reset too.</summary>
    Reset,
}

/// <summary>Told about every chunk forwarded, on the splicer's thread: keep it cheap and non-blocking.</summary>
public interface ISpliceObserver
{
    void Forwarded(bool toUpstream, int bytes);
}
