namespace Forwarder.L7.Http2.Client;

/// <summary>
/// Flushes held across the connections of any pools: each connection a stream opens on while the
/// batch is open (<see cref="Http2ClientPool.OpenStreamAsync"/>) holds its flushes, as under its
/// own <see cref="Http2ClientConnection.Batch"/>, until <see cref="Close"/>. So the heads of the
/// streams one read of a client opens leave in one send per upstream connection, not one each.
/// Opened and closed by one thread, over and over; streams may join it from any thread.
/// </summary>
internal sealed class Http2ClientBatch
{
    private readonly Lock _lock = new();
    private List<Http2ClientConnection> _held = [];
    private List<Http2ClientConnection> _releasing = [];
    private bool _open;

    public void Open()
    {
        lock (_lock)
        {
            _open = true;
        }
    }

    /// <summary>Flushes what each held connection was given meanwhile (one send each).</summary>
    public void Close()
    {
        List<Http2ClientConnection> held;
        lock (_lock)
        {
            _open = false;
            held = _held;
            (_held, _releasing) = (_releasing, _held);
        }

        // Outside the lock: a flush may send at once, and streams of other threads may be joining.
        foreach (var connection in held)
        {
            connection.EndBatch();
        }

        held.Clear();
    }

    /// <summary>Before a stream's head is written on <paramref name="connection"/>: while the batch is open, the connection holds its flushes until it closes.</summary>
    internal void Hold(Http2ClientConnection connection)
    {
        lock (_lock)
        {
            if (_open && !_held.Contains(connection))
            {
                connection.BeginBatch();
                _held.Add(connection);
            }
        }
    }
}
