using System.Net.Sockets;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// The process-wide cap on proxied sockets, accepted and dialled (HAProxy's maxconn): kept well
/// below RLIMIT_NOFILE so the runtime always finds a descriptor when it needs one (a thread's
/// start opens /proc/self/status; failing that aborts the process). A proxied connection takes two
/// sockets, so the cap is twice <see cref="MaxConnections"/>. Listeners wait for room before they
/// accept (the flood waits in the backlog, not in a loop of accept-and-close); a dial past the cap
/// fails at once, as socket() would with EMFILE.
/// </summary>
public sealed class ConnectionBudget(int maxConnections)
{
    private readonly Lock _gate = new();
    private int _maxConnections = maxConnections;
    private int _open;
    private long _acceptPauses;
    private long _dialsRefused;
    private TaskCompletionSource? _room;

    /// <summary>Proxied connections (socket pairs) allowed at once; changing it wakes waiting listeners.</summary>
    public int MaxConnections
    {
        get => Volatile.Read(ref _maxConnections);
        set
        {
            Volatile.Write(ref _maxConnections, value);
            WakeIfRoom();
        }
    }

    /// <summary>Proxied sockets open now, accepted and dialled.</summary>
    public int OpenSockets => Volatile.Read(ref _open);

    /// <summary>Times a listener found the budget full and paused before accepting.</summary>
    public long AcceptPauses => Volatile.Read(ref _acceptPauses);

    /// <summary>Dials refused because the budget was full.</summary>
    public long DialsRefused => Volatile.Read(ref _dialsRefused);

    /// <summary>Room for one more client and the upstream it will need.</summary>
    private bool HasRoomToAccept => Volatile.Read(ref _open) + 2 <= 2L * MaxConnections;

    /// <summary>
    /// Completes at once while an accepted connection and its upstream fit; otherwise
    /// <paramref name="paused"/> runs once and the wait lasts until enough sockets have closed.
    /// </summary>
    public ValueTask WaitToAcceptAsync(Action paused, CancellationToken cancellationToken)
        => HasRoomToAccept ? default : WaitForRoomAsync(paused, cancellationToken);

    /// <summary>Counts a socket a listener accepted after <see cref="WaitToAcceptAsync"/> (listeners may overshoot by one each).</summary>
    public void Accepted() => Interlocked.Increment(ref _open);

    /// <summary>Counts a socket about to be dialled, or returns false at the cap.</summary>
    public bool TryDial()
    {
        var limit = 2L * MaxConnections;
        while (true)
        {
            var open = Volatile.Read(ref _open);
            if (open + 1 > limit)
            {
                Interlocked.Increment(ref _dialsRefused);
                return false;
            }

            if (Interlocked.CompareExchange(ref _open, open + 1, open) == open)
            {
                return true;
            }
        }
    }

    /// <summary>A counted socket was closed.</summary>
    public void Release()
    {
        // A full fence: a listener that published its wait before this decrement is seen below.
        Interlocked.Decrement(ref _open);
        if (Volatile.Read(ref _room) is not null)
        {
            WakeIfRoom();
        }
    }

    /// <summary>A dial refused at the cap: fails as socket() does with EMFILE, so callers sort it as a local failure.</summary>
    public static SocketException Refusal() => new LimitReachedException();

    private async ValueTask WaitForRoomAsync(Action paused, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _acceptPauses);
        paused();
        while (true)
        {
            Task room;
            lock (_gate)
            {
                // Published before the count is read again, so a release in between wakes it.
                _room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                room = _room.Task;
                Interlocked.MemoryBarrier();
                if (HasRoomToAccept)
                {
                    return;
                }
            }

            await room.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void WakeIfRoom()
    {
        if (!HasRoomToAccept)
        {
            return;
        }

        TaskCompletionSource? room;
        lock (_gate)
        {
            room = _room;
            _room = null;
        }

        room?.TrySetResult();
    }

    private sealed class LimitReachedException() : SocketException((int)SocketError.TooManyOpenSockets)
    {
        public override string Message => "The process-wide connection limit (limits.maxConnections) was reached.";
    }
}
