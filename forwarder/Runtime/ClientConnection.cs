using Microsoft.AspNetCore.Connections;

namespace Forwarder.Runtime;

/// <summary>
/// An accepted connection as the tracker sees it, from accept until it is closed: how long it has
/// been idle and how to abort it together with whatever it is joined to upstream.
/// </summary>
internal sealed class ClientConnection(ConnectionContext client, long now) : ITrackedConnection
{
    private readonly Lock _lock = new();
    private long _lastActivity = now;
    private Action<string>? _abortUpstream;
    private string? _abortReason;

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
