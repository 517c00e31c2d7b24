using Microsoft.AspNetCore.Connections;

namespace Forwarder.Runtime;

/// <summary>
/// An accepted connection as the tracker sees it, from accept until it is closed: how long it has
/// been idle and how to abort it together with the upstream connection it is spliced to.
/// </summary>
internal sealed class ClientConnection(ConnectionContext client, long now) : ITrackedConnection
{
    private readonly Lock _lock = new();
    private long _lastActivity = now;
    private ConnectionContext? _upstream;
    private string? _abortReason;

    public ConnectionContext Client => client;

    public long LastActivity => Volatile.Read(ref _lastActivity);

    public TimeSpan IdleTimeout { get; set; }

    public void Touch(long now) => Volatile.Write(ref _lastActivity, now);

    /// <summary>Joins the upstream connection to this one's fate; aborts it at once if this one already was.</summary>
    public void AttachUpstream(ConnectionContext upstream)
    {
        string? reason;
        lock (_lock)
        {
            _upstream = upstream;
            reason = _abortReason;
        }

        if (reason is not null)
        {
            upstream.Abort(new ConnectionAbortedException(reason));
        }
    }

    public void Abort(string reason)
    {
        ConnectionContext? upstream;
        lock (_lock)
        {
            _abortReason ??= reason;
            upstream = _upstream;
        }

        client.Abort(new ConnectionAbortedException(reason));
        upstream?.Abort(new ConnectionAbortedException(reason));
    }
}
