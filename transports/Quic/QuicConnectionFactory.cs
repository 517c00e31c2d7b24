using System.Net;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Quic;

/// <summary>
/// The client half of the QUIC transport: one QUIC connection per peer endpoint, a new stream per
/// <see cref="ConnectAsync"/>. A peer connection that failed is replaced on the next connect.
/// </summary>
internal sealed class QuicConnectionFactory(Func<IPEndPoint, QuicClientOptions> optionsFor) : IConnectionFactory, IAsyncDisposable
{
    private readonly Dictionary<IPEndPoint, Task<QuicConnection>> _peers = [];
    private readonly Lock _gate = new();

    public async ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var peer = endpoint as IPEndPoint ?? throw new NotSupportedException($"QUIC dials IP endpoints, not {endpoint}");
        for (var attempt = 0; ; attempt++)
        {
            var pending = PeerConnection(peer);
            try
            {
                var connection = await pending.WaitAsync(cancellationToken);
                var stream = await connection.OpenStreamAsync(cancellationToken);
                return new QuicStreamConnection(stream, connection.LocalEndPoint, peer);
            }
            catch (QuicException) when (attempt == 0)
            {
                Forget(peer, pending); // a dead or refused connection: dial afresh once
            }
        }
    }

    private Task<QuicConnection> PeerConnection(IPEndPoint peer)
    {
        lock (_gate)
        {
            if (!_peers.TryGetValue(peer, out var connection) || connection.IsFaulted || connection.IsCanceled)
            {
                connection = QuicConnection.ConnectAsync(peer, optionsFor(peer));
                _peers[peer] = connection;
            }

            return connection;
        }
    }

    private void Forget(IPEndPoint peer, Task<QuicConnection> connection)
    {
        lock (_gate)
        {
            if (_peers.TryGetValue(peer, out var current) && current == connection)
            {
                _peers.Remove(peer);
            }
        }

        if (connection.IsCompletedSuccessfully)
        {
            _ = connection.Result.DisposeAsync().AsTask();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task<QuicConnection>[] connections;
        lock (_gate)
        {
            connections = [.. _peers.Values];
            _peers.Clear();
        }

        foreach (var connection in connections)
        {
            if (connection.IsCompletedSuccessfully)
            {
                await connection.Result.DisposeAsync();
            }
        }
    }
}
