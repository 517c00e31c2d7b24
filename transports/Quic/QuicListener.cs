using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Forwarder.Transports.Quic;

/// <summary>
/// The server side: one UDP socket for all connections. Datagrams are routed to connections by their
/// destination connection ID; a client Initial with an unknown one starts a connection, which
/// <see cref="AcceptAsync"/> returns once its handshake completes.
/// </summary>
internal sealed class QuicListener : IAsyncDisposable
{
    private const int DatagramBufferSize = 64 * 1024;
    private const int LocalCidLength = 16;

    private readonly Socket _socket;
    private readonly QuicServerOptions _options;
    private readonly SocketAddress _local;
    private readonly ConcurrentDictionary<byte[], QuicConnection> _routes = new(QuicConnectionIdComparer.Instance);
    private readonly ConcurrentDictionary<byte[], QuicConnection>.AlternateLookup<ReadOnlySpan<byte>> _routesBySpan;
    private readonly ConcurrentDictionary<QuicConnection, byte> _handshaking = new();
    private readonly Channel<QuicConnection> _accepted = Channel.CreateUnbounded<QuicConnection>();
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(DatagramBufferSize, pinned: true);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receiveLoop;

    private QuicListener(Socket socket, QuicServerOptions options)
    {
        _socket = socket;
        _options = options;
        _local = socket.LocalEndPoint!.Serialize();
        _routesBySpan = _routes.GetAlternateLookup<ReadOnlySpan<byte>>();
        _receiveLoop = ReceiveLoopAsync();
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public static QuicListener Bind(IPEndPoint endPoint, QuicServerOptions options)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(endPoint);
            return new QuicListener(socket, options);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public ValueTask<QuicConnection> AcceptAsync(CancellationToken cancellationToken = default) =>
        _accepted.Reader.ReadAsync(cancellationToken);

    /// <summary>
    /// Sends a datagram that is not QUIC from the listener's port (hole-punching probes and rendezvous
    /// tokens), with <paramref name="ttl"/> hops at most if given. The TTL is the socket's for the
    /// moment of the send, so a QUIC packet sent meanwhile may share it and need retransmitting.
    /// </summary>
    public void Send(ReadOnlySpan<byte> datagram, EndPoint to, short? ttl = null)
    {
        if (ttl is not { } hops)
        {
            _socket.SendTo(datagram, SocketFlags.None, to);
            return;
        }

        lock (_socket)
        {
            var usual = _socket.Ttl;
            _socket.Ttl = hops;
            try
            {
                _socket.SendTo(datagram, SocketFlags.None, to);
            }
            finally
            {
                _socket.Ttl = usual;
            }
        }
    }

    internal void Route(byte[] connectionId, QuicConnection connection) => _routes[connectionId] = connection;

    internal void Unroute(byte[] connectionId) => _routes.TryRemove(connectionId, out _);

    private async Task ReceiveLoopAsync()
    {
        var from = new SocketAddress(_socket.AddressFamily);
        while (!_stop.IsCancellationRequested)
        {
            int received;
            try
            {
                received = await _socket.ReceiveFromAsync(_buffer.AsMemory(), SocketFlags.None, from, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // ICMP errors for one peer's datagrams must not stop the others
            }

            if (Dispatch(received, from) is { } connection)
            {
                _ = PublishWhenReadyAsync(connection);
            }
        }
    }

    /// <returns>A connection this datagram started, if any.</returns>
    private unsafe QuicConnection? Dispatch(int length, SocketAddress from)
    {
        var datagram = _buffer.AsSpan(0, length);
        Ngtcp2Native.VersionCid ids;
        fixed (byte* packet = datagram)
        {
            if (Ngtcp2Native.DecodeVersionCid(&ids, packet, (nuint)length, LocalCidLength) != 0)
            {
                return null; // not QUIC, or a version we do not speak (version negotiation is not sent yet)
            }
        }

        if (_routesBySpan.TryGetValue(new ReadOnlySpan<byte>(ids.Dcid, (int)ids.DcidLength), out var existing))
        {
            existing.OnDatagram(datagram);
            return null;
        }

        var peer = new SocketAddress(from.Family, from.Size);
        from.Buffer.CopyTo(peer.Buffer);
        try
        {
            return QuicConnection.Accept(this, _socket, _local, peer, datagram, _options);
        }
        catch (QuicException)
        {
            return null; // a peer we cannot set up a session for: drop its Initial
        }
    }

    private async Task PublishWhenReadyAsync(QuicConnection connection)
    {
        _handshaking[connection] = 0;
        try
        {
            await connection.Handshake.WaitAsync(_options.HandshakeTimeout, _stop.Token);
            _handshaking.TryRemove(connection, out _);
            if (_accepted.Writer.TryWrite(connection))
            {
                return;
            }
        }
        catch (Exception)
        {
            // Handshake failed, timed out, or the listener is stopping.
        }

        _handshaking.TryRemove(connection, out _);
        await connection.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _receiveLoop;
        _accepted.Writer.TryComplete();
        foreach (var connection in _handshaking.Keys)
        {
            await connection.DisposeAsync();
        }

        _socket.Dispose();
        _stop.Dispose();
    }
}
