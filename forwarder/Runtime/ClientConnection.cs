using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Runtime;

/// <summary>
/// An accepted connection as the tracker sees it, from accept until it is closed: how long it has
/// been idle, how to abort it together with whatever it is joined to upstream, and the deadline
/// of the phase it is in (an HTTP request head, an upstream response), whose passing cancels the
/// read the phase waits on.
/// </summary>
internal sealed class ClientConnection(ConnectionContext client, long now) : ITrackedConnection
{
    /// <summary>The low bit of <see cref="_phase"/>: the phase's deadline was reached.</summary>
    private const long Reached = 1;

    private long _lastActivity = now;
    private Action<string>? _abortUpstream;
    private string? _abortReason;
    private long _deadline = long.MaxValue;
    private PipeReader? _deadlineReader;
    private int _ended;

    /// <summary>
    /// The phase's number shifted left by one, with the low bit set once its deadline was reached.
    /// Only the session moves to a new phase (arming or disarming); the tracker only sets the bit,
    /// and only on the phase it looked at: one word, so neither takes a lock per request.
    /// </summary>
    private long _phase;

    public ConnectionContext Client => client;

    public long LastActivity => Volatile.Read(ref _lastActivity);

    public TimeSpan IdleTimeout { get; set; }

    public void Touch(long now) => Volatile.Write(ref _lastActivity, now);

    /// <summary>Deadlines of the connection's own beside its phase's (the route timeouts of its HTTP/2 streams), checked on every tick too.</summary>
    public Action<long>? CheckOwnDeadlines { get; set; }

    /// <summary>
    /// Joins the upstream side to this connection's fate; aborts it at once if this one already was.
    /// No lock (one is 40 bytes for every idle connection): each side writes its own field with a
    /// full fence, then reads the other's, so a racing attach and abort cannot both miss each
    /// other; both may see each other, and an upstream abort is idempotent.
    /// </summary>
    public void AttachUpstream(Action<string> abort)
    {
        Interlocked.Exchange(ref _abortUpstream, abort);
        if (Volatile.Read(ref _abortReason) is { } reason)
        {
            abort(reason);
        }
    }

    /// <summary>
    /// From <paramref name="deadline"/> (a tracker timestamp) on, the pending or next read on
    /// <paramref name="reader"/> returns cancelled. Replaces any deadline armed before.
    /// </summary>
    public void ArmDeadline(long deadline, PipeReader reader)
    {
        // Written before the phase moves on (a full fence): a tracker that sees the new phase sees these too.
        _deadlineReader = reader;
        Volatile.Write(ref _deadline, deadline);
        NextPhase();
    }

    /// <summary>Clears the deadline; true if it had passed (and cancelled a read) before it was cleared.</summary>
    public bool DisarmDeadline()
    {
        _deadlineReader = null;
        Volatile.Write(ref _deadline, long.MaxValue);
        return (NextPhase() & Reached) != 0;
    }

    /// <remarks>
    /// The read is cancelled from the thread pool: the transports' pipes resume readers inline, so
    /// cancelling here would run the session on the tracker's thread, stalling every other
    /// connection's checks. A phase that ended meanwhile is left alone.
    /// </remarks>
    public void CheckDeadline(long now)
    {
        CheckOwnDeadlines?.Invoke(now);
        var phase = Volatile.Read(ref _phase);
        if ((phase & Reached) != 0 || now < Volatile.Read(ref _deadline))
        {
            return;
        }

        // Read before claiming the phase: if the session moved on meanwhile, the claim fails, and
        // a reader of a newer phase is never cancelled for an older one's deadline.
        var reader = Volatile.Read(ref _deadlineReader);
        if (Interlocked.CompareExchange(ref _phase, phase | Reached, phase) != phase || reader is null)
        {
            return;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static state => state.Connection.CancelRead(state.Reader, state.Phase), (Connection: this, Reader: reader, Phase: phase), preferLocal: false);
    }

    /// <summary>Moves to the next phase; returns the last one, with its reached bit.</summary>
    private long NextPhase()
    {
        var current = Volatile.Read(ref _phase);
        return Interlocked.Exchange(ref _phase, (current | Reached) + 1);
    }

    private void CancelRead(PipeReader reader, long phase)
    {
        if ((Volatile.Read(ref _phase) & ~Reached) == phase)
        {
            reader.CancelPendingRead();
        }
    }

    /// <summary>
    /// True the first time only: the connection's end (budget, counts, tracker) is given back once,
    /// however many paths reach it (a splice's end racing the handler's), so no gauge goes negative.
    /// </summary>
    public bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;

    public void Abort(string reason)
    {
        Interlocked.CompareExchange(ref _abortReason, reason, null);
        var abortUpstream = Volatile.Read(ref _abortUpstream);
        client.Abort(new ConnectionAbortedException(reason));
        abortUpstream?.Invoke(reason);
    }
}
