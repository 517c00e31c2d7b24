using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Quic;

/// <summary>The server half of the QUIC transport: every stream a peer opens is accepted as a connection.</summary>
internal sealed class QuicConnectionListenerFactory(QuicServerOptions options) : IConnectionListenerFactory
{
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var local = endpoint as IPEndPoint ?? throw new NotSupportedException($"QUIC binds IP endpoints, not {endpoint}");
        return ValueTask.FromResult<IConnectionListener>(new QuicConnectionListener(QuicListener.Bind(local, options)));
    }
}

internal sealed class QuicConnectionListener : IConnectionListener
{
    private readonly QuicListener _listener;
    private readonly Channel<ConnectionContext> _streams = Channel.CreateUnbounded<ConnectionContext>();
    private readonly List<QuicConnection> _connections = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public QuicConnectionListener(QuicListener listener)
    {
        _listener = listener;
        _accepting = AcceptConnectionsAsync();
    }

    public EndPoint EndPoint => _listener.LocalEndPoint;

    /// <returns>The next stream any peer opened, or null once unbound.</returns>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _streams.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    private async Task AcceptConnectionsAsync()
    {
        try
        {
            while (true)
            {
                var connection = await _listener.AcceptAsync(_stop.Token);
                lock (_connections)
                {
                    _connections.Add(connection);
                }

                _ = AcceptStreamsAsync(connection);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            // Unbound.
        }
    }

    private async Task AcceptStreamsAsync(QuicConnection connection)
    {
        try
        {
            while (true)
            {
                var stream = await connection.AcceptStreamAsync(_stop.Token);
                await _streams.Writer.WriteAsync(new QuicStreamConnection(stream, EndPoint, connection.RemoteEndPoint), _stop.Token);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return; // unbound: streams in flight carry on until the listener is disposed
        }
        catch (Exception)
        {
            // The peer closed or the connection failed: its streams end with it.
        }

        lock (_connections)
        {
            _connections.Remove(connection);
        }

        await connection.DisposeAsync();
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        await _stop.CancelAsync();
        _streams.Writer.TryComplete();
        await _accepting;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync();
        QuicConnection[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        foreach (var connection in connections)
        {
            await connection.DisposeAsync();
        }

        await _listener.DisposeAsync();
        _stop.Dispose();
    }
}
