using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// The HTTP/2 connections to one upstream endpoint. A stream opens on the least loaded
/// connection that has room under its server's stream limit; when none has, another is dialled
/// (one dial at a time, up to <see cref="Http2ClientOptions.MaxConnections"/>), and past that the
/// stream waits its turn on the least loaded one. Connections that ended, went away or idled out
/// are dropped as they are met, and an open the server refused unprocessed is tried again.
/// </summary>
internal sealed class Http2ClientPool(Func<CancellationToken, ValueTask<ConnectionContext>> connect, Http2ClientOptions options) : IAsyncDisposable
{
    /// <summary>Opens tried per stream: a connection that went away as it was picked, then a fresh one.</summary>
    private const int MaxAttempts = 3;

    private readonly object _gate = new();
    private readonly List<Http2ClientConnection> _connections = [];
    private Task? _dialing;
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

    /// <summary>Opens a stream as <see cref="Http2ClientConnection.OpenStreamAsync"/> does, on a connection of the pool's choosing.</summary>
    /// <exception cref="Http2ClientException">The request could not be sent; <see cref="Http2ClientException.CanRetry"/> if not for want of trying.</exception>
    /// <exception cref="Exception">Dialling a connection failed.</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Http2ClientStream> OpenStreamAsync(Http2HeaderList head, bool endStream, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            Http2ClientConnection? connection;
            while (true)
            {
                Task dialing;
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    connection = Pick();
                    if (connection is not null)
                    {
                        break;
                    }

                    if (_dialing is null || _dialing.IsCompleted)
                    {
                        _dialing = DialAsync();
                    }

                    dialing = _dialing;
                }

                await dialing.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

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

    public async ValueTask DisposeAsync()
    {
        Http2ClientConnection[] connections;
        lock (_gate)
        {
            _disposed = true;
            connections = [.. _connections];
            _connections.Clear();
        }

        foreach (var connection in connections)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Under the lock: the connection to use, or null to dial one.</summary>
    private Http2ClientConnection? Pick()
    {
        Prune();
        Http2ClientConnection? roomy = null;
        Http2ClientConnection? least = null;
        foreach (var connection in _connections)
        {
            var active = connection.ActiveStreams;
            if (connection.HasCapacity && (roomy is null || active < roomy.ActiveStreams))
            {
                roomy = connection;
            }

            if (least is null || active < least.ActiveStreams)
            {
                least = connection;
            }
        }

        return roomy ?? (_connections.Count < options.MaxConnections ? null : least);
    }

    /// <summary>Under the lock: forgets connections that take no new streams (they finish and close on their own).</summary>
    private void Prune() => _connections.RemoveAll(connection => !connection.IsUsable);

    private async Task DialAsync()
    {
        // Off the caller's lock before anything else runs.
        await Task.Yield();
        var connection = new Http2ClientConnection(await connect(CancellationToken.None).ConfigureAwait(false), options);
        try
        {
            await connection.StartAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
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
