using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The HTTP/2 connections to one upstream endpoint. A stream opens on the least loaded
/// connection that has room under its server's stream limit; when none has, another is dialled
/// (one dial at a time, up to <see cref="Http2ClientOptions.MaxConnections"/>), and past that the
/// opener waits until any connection ends a stream (all waiters look again: a pool at its limit is
/// the exception, sized by MaxConnections, not the steady state). Connections that ended, went away or idled out
/// are dropped as they are met, and an open the server refused unprocessed is tried again.
/// </summary>
internal sealed class Http2ClientPool(Func<CancellationToken, ValueTask<ConnectionContext>> connect, Http2ClientOptions options) : IAsyncDisposable
{
    /// <summary>Opens tried per stream: a connection that went away as it was picked, then a fresh one.</summary>
    private const int MaxAttempts = 3;

    private readonly object _gate = new();
    private readonly List<Http2ClientConnection> _connections = [];

    /// <summary>Connections that take no new streams but may still finish some: disposed with the pool if still running.</summary>
    private readonly List<Http2ClientConnection> _retired = [];
    private Task? _dialing;
    private TaskCompletionSource? _freed;
    private long _streamsClosed;
    private bool _disposed;

    /// <summary>Connections that take streams now.</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_gate)
            {
                Prune();
                return _connections.Count;
            }
        }
    }

    /// <summary>
    /// Opens a stream as <see cref="Http2ClientConnection.OpenStreamAsync"/> does, on a connection
    /// of the pool's choosing; with an open <paramref name="batch"/>, its head is sent when the batch closes.
    /// </summary>
    /// <exception cref="Http2ClientException">The request could not be sent; <see cref="Http2ClientException.CanRetry"/> if not for want of trying.</exception>
    /// <exception cref="Http2ClientPoolFullException">Cancelled while the pool was full, waiting for a stream to end.</exception>
    /// <exception cref="Http2ClientNoStreamsException">The server allows no streams on any of the pool's connections.</exception>
    /// <exception cref="Exception">Dialling a connection failed.</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Http2ClientStream> OpenStreamAsync(Http2HeaderList head, bool endStream, CancellationToken cancellationToken = default, Http2ClientBatch? batch = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            Http2ClientConnection? connection;
            while (true)
            {
                Task wait;
                bool waitsForRoom;
                Http2ClientConnection[]? allowNone = null;
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);

                    var closed = Volatile.Read(ref _streamsClosed);
                    connection = Pick(out waitsForRoom, out var allowsNone);
                    if (connection is not null)
                    {
                        break;
                    }

                    if (allowsNone)
                    {
                        allowNone = [.. _connections];
                        wait = Task.CompletedTask;
                    }
                    else if (waitsForRoom)
                    {
                        var freed = _freed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        if (Volatile.Read(ref _streamsClosed) != closed)
                        {
                            // A slot was freed while this looked: look again rather than wait for the next.
                            continue;
                        }

                        wait = freed.Task;
                    }
                    else
                    {
                        if (_dialing is null || _dialing.IsCompleted)
                        {
                            _dialing = DialAsync();
                        }

                        wait = _dialing;
                    }
                }

                if (allowNone is not null)
                {
                    // Off the pool's lock: draining takes each connection's.
                    foreach (var zero in allowNone)
                    {
                        zero.Drain();
                    }

                    throw new Http2ClientNoStreamsException();
                }

                try
                {
                    await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (waitsForRoom && cancellationToken.IsCancellationRequested)
                {
                    throw new Http2ClientPoolFullException(options.MaxConnections, cancellationToken);
                }
            }

            batch?.Hold(connection);
            try
            {
                return await connection.OpenStreamAsync(head, endStream, cancellationToken).ConfigureAwait(false);
            }
            catch (Http2ClientException ex) when (ex.CanRetry && attempt < MaxAttempts)
            {
                // The connection went away before the stream opened: another one takes it.
            }
        }
    }

    /// <summary>
    /// For a reload that drops the endpoint's pool: no more opens (as disposed), while the streams
    /// in flight finish: each connection drains (GOAWAY once its streams have ended) and closes.
    /// What still runs after <paramref name="grace"/> is aborted. Never throws.
    /// </summary>
    /// <summary>
    /// Closes the pool to new streams and lets the open ones finish: each connection closes as it
    /// drains. What is still open after <paramref name="grace"/>, or once <paramref name="abort"/>
    /// fires (the process is stopping), is aborted. Never throws.
    /// </summary>
    public async Task RetireAsync(TimeSpan grace, CancellationToken abort)
    {
        Http2ClientConnection[] connections;
        lock (_gate)
        {
            _disposed = true;
            connections = [.. _connections, .. _retired];
            _connections.Clear();
            _retired.Clear();
        }

        foreach (var connection in connections)
        {
            connection.Drain();
        }

        try
        {
            // WaitAsync's timer goes with it when the drain finishes first.
            await Task.WhenAll(connections.Select(c => c.Completion)).WaitAsync(grace, options.Time, abort).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http2ClientConnection[] connections;
        lock (_gate)
        {
            _disposed = true;
            connections = [.. _connections, .. _retired];
            _connections.Clear();
            _retired.Clear();
        }

        foreach (var connection in connections)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Under the lock: the least loaded connection with room, or null: then <paramref name="full"/>
    /// says whether to wait for a stream to end (every connection is at its limit and there are as
    /// many as allowed) or to dial another, and <paramref name="allowsNone"/> whether the server
    /// allows no streams at all: every connection says 0 (one that says 0 next to others may be
    /// stale, and must not stop dials the connection limit allows).
    /// </summary>
    private Http2ClientConnection? Pick(out bool full, out bool allowsNone)
    {
        Prune();
        Http2ClientConnection? best = null;
        allowsNone = _connections.Count > 0;
        foreach (var connection in _connections)
        {
            if (connection.HasCapacity && (best is null || connection.ActiveStreams < best.ActiveStreams))
            {
                best = connection;
            }

            allowsNone &= connection.MaxConcurrentStreams == 0;
        }

        full = best is null && _connections.Count >= options.MaxConnections;
        return best;
    }

    /// <summary>A connection closed a stream or stopped taking them: whoever waits for room looks again. Lock-free: called under the connection's lock.</summary>
    private void SlotsChanged()
    {
        Interlocked.Increment(ref _streamsClosed);
        Interlocked.Exchange(ref _freed, null)?.TrySetResult();
    }

    /// <summary>Under the lock: forgets connections that take no new streams (they finish and close on their own).</summary>
    private void Prune()
    {
        _retired.RemoveAll(connection => connection.Completion.IsCompleted);
        foreach (var connection in _connections)
        {
            if (!connection.IsUsable && !connection.Completion.IsCompleted)
            {
                _retired.Add(connection);
            }
        }

        _connections.RemoveAll(connection => !connection.IsUsable);
    }

    private Http2ClientException TimedOut(Exception inner, bool connected)
        => connected
            ? new($"The upstream took the connection but sent no HTTP/2 SETTINGS within {options.ConnectTimeout}.", Http2ErrorCode.ConnectError, canRetry: false, inner) { SettingsTimedOut = true }
            : new($"No HTTP/2 connection to the upstream within {options.ConnectTimeout}.", Http2ErrorCode.ConnectError, canRetry: false, inner);

    private async Task DialAsync()
    {
        // Off the caller's lock before anything else runs.
        await Task.Yield();
        // One deadline for connecting, TLS and the server's SETTINGS: a stalled upstream must not hold every opener.
        using var deadline = new CancellationTokenSource(options.ConnectTimeout);
        ConnectionContext transport;
        try
        {
            transport = await connect(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (deadline.IsCancellationRequested)
        {
            throw TimedOut(ex, connected: false);
        }

        var connection = new Http2ClientConnection(transport, options) { SlotsChanged = SlotsChanged };
        try
        {
            await connection.StartAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            if (ex is OperationCanceledException && deadline.IsCancellationRequested)
            {
                // Connected (and past TLS): what did not come in time was the server's SETTINGS.
                throw TimedOut(ex, connected: true);
            }

            throw;
        }

        lock (_gate)
        {
            if (!_disposed)
            {
                _connections.Add(connection);
                return;
            }
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }
}
