using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp;

/// <summary>A bound listening socket that hands out accepted sockets as <see cref="TcpConnection"/>s.</summary>
internal sealed class TcpConnectionListener : IConnectionListener
{
    private readonly Socket _listenSocket;
    private readonly MemoryPool<byte> _pool;
    private readonly TcpTransportOptions _options;

    public TcpConnectionListener(Socket listenSocket, MemoryPool<byte> pool, TcpTransportOptions options)
    {
        _listenSocket = listenSocket;
        _pool = pool;
        _options = options;
        EndPoint = listenSocket.LocalEndPoint!;
    }

    public EndPoint EndPoint { get; }

    /// <exception cref="SocketException">
    /// <see cref="SocketError.TooManyOpenSockets"/>: out of descriptors, or the reserve kept for
    /// the runtime is not back yet (see <see cref="FileDescriptorReserve"/>); the caller pauses.
    /// </exception>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (!FileDescriptorReserve.TryHold())
            {
                throw new SocketException((int)SocketError.TooManyOpenSockets);
            }

            Socket socket;
            try
            {
                socket = await _listenSocket.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TooManyOpenSockets)
            {
                FileDescriptorReserve.Release();
                throw;
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.OperationAborted)
            {
                return null;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                // A connection that died in the backlog; take the next one.
                continue;
            }

            FileDescriptorReserve.Check(socket);
            try
            {
                TcpSocketConfigurator.Apply(socket, _options);
            }
            catch (SocketException)
            {
                socket.Dispose();
                continue;
            }

            return new TcpConnection(socket, _pool, _options);
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _listenSocket.Dispose();
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _listenSocket.Dispose();
        return ValueTask.CompletedTask;
    }
}
