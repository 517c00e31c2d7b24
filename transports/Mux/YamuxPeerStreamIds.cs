namespace Forwarder.Transports.Mux;

/// <summary>
/// The stream ids the peer has opened, to tell a new stream from a reused id. A peer opening
/// streams from many threads takes ids in order but may send their SYNs out of order
/// (HashiCorp's yamux and go-yamux take the id atomically and send outside any lock), so any
/// unused id of the peer's parity is new, not only one above the last. Remembering every id
/// forever would grow without bound; instead a bitmap covers the <see cref="Window"/> ids just
/// below the highest seen. A SYN cannot lag that far behind in practice: those peers block
/// opening once their accept backlog (256 by default) of SYNs is unanswered.
/// Used on the session's reader only.
/// </summary>
internal sealed class YamuxPeerStreamIds
{
    /// <summary>How many of the peer's ids, counting down from the highest seen, are remembered.</summary>
    internal const int Window = 4096;

    private readonly ulong[] _seen = new ulong[Window / 64];
    private readonly uint _parity;
    private long _highest = -1;

    /// <param name="parity">The peer's ids modulo 2: 1 when the peer is the client, 0 when it is the server.</param>
    public YamuxPeerStreamIds(uint parity) => _parity = parity;

    /// <summary>Records a SYN's id; says whether it is new, used before, too old to tell, or not the peer's to open.</summary>
    public YamuxSynVerdict Record(uint id)
    {
        if (id % 2 != _parity)
        {
            return YamuxSynVerdict.WrongParity;
        }

        // Counted in the peer's own ids (every other one), so the window spans Window of them.
        long index = id / 2;
        if (index > _highest)
        {
            for (var cleared = Math.Max(_highest + 1, index - Window + 1); cleared < index; cleared++)
            {
                Clear(cleared);
            }

            _highest = index;
            Set(index);
            return YamuxSynVerdict.New;
        }

        if (_highest - index >= Window)
        {
            return YamuxSynVerdict.TooOld;
        }

        if (IsSet(index))
        {
            return YamuxSynVerdict.Reused;
        }

        Set(index);
        return YamuxSynVerdict.New;
    }

    private bool IsSet(long index) => (_seen[Slot(index)] & Bit(index)) != 0;

    private void Set(long index) => _seen[Slot(index)] |= Bit(index);

    private void Clear(long index) => _seen[Slot(index)] &= ~Bit(index);

    private static long Slot(long index) => (index % Window) / 64;

    private static ulong Bit(long index) => 1UL << (int)(index % 64);
}

/// <summary>What a SYN's id is to the session.</summary>
internal enum YamuxSynVerdict
{
    /// <summary>Never used by the peer: the stream is opened.</summary>
    New,

    /// <summary>Used before by the peer, whether that stream is still open or already closed: a protocol error.</summary>
    Reused,

    /// <summary>So far below the highest id seen that whether it was used is no longer known: the stream is refused (RST), the session goes on.</summary>
    TooOld,

    /// <summary>An id of our parity: only we open those, so it is a protocol error.</summary>
    WrongParity,
}
