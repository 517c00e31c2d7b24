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
    private readonly Lock _lock = new();
    private long _lastActivity = now;
    private Action<string>? _abortUpstream;
    private string? _abortReason;
    private long _deadline = long.MaxValue;
    private PipeReader? _deadlineReader;
    private bool _deadlineReached;
    private long _phase;

    public ConnectionContext Client => client;

    public long LastActivity => Volatile.Read(ref _lastActivity);

    public TimeSpan IdleTimeout { get; set; }

    public void Touch(long now) => Volatile.Write(ref _lastActivity, now);

    /// <summary>Joins the upstream side to this connection's fate; aborts it at once if this one already was.</summary>
    public void AttachUpstream(Action<string> abort)
    {
        string? reason;
        lock (_lock)
        {
            _abortUpstream = abort;
            reason = _abortReason;
        }

        if (reason is not null)
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
        lock (_lock)
        {
            (_deadline, _deadlineReader, _deadlineReached) = (deadline, reader, false);
            _phase++;
        }
    }

    /// <summary>Clears the deadline; true if it had passed (and cancelled a read) before it was cleared.</summary>
    public bool DisarmDeadline()
    {
        lock (_lock)
        {
            var reached = _deadlineReached;
            (_deadline, _deadlineReader, _deadlineReached) = (long.MaxValue, null, false);
            _phase++;
            return reached;
        }
    }

    /// <remarks>
    /// The read is cancelled from the thread pool: the transports' pipes resume readers inline, so
    /// cancelling here would run the session on the tracker's thread, stalling every other
    /// connection's checks. A phase that ended meanwhile is left alone.
    /// </remarks>
    public void CheckDeadline(long now)
    {
        PipeReader? reader;
        long phase;
        lock (_lock)
        {
            if (now < _deadline || _deadlineReached)
            {
                return;
            }

            _deadlineReached = true;
            (reader, phase) = (_deadlineReader, _phase);
        }

        if (reader is not null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Connection.CancelRead(state.Reader, state.Phase), (Connection: this, Reader: reader, Phase: phase), preferLocal: false);
        }
    }

    private void CancelRead(PipeReader reader, long phase)
    {
        lock (_lock)
        {
            if (_phase != phase)
            {
                return;
            }
        }

        reader.CancelPendingRead();
    }

    public void Abort(string reason)
    {
        Action<string>? abortUpstream;
        lock (_lock)
        {
            _abortReason ??= reason;
            abortUpstream = _abortUpstream;
        }

        client.Abort(new ConnectionAbortedException(reason));
        abortUpstream?.Invoke(reason);
    }
}
