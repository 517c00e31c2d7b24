using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// The server side of the TCP transport: binds IP (or Unix domain) endpoints and accepts
/// connections that keep TCP's half-close and reset semantics.
/// </summary>
public sealed class TcpListenerFactory(TcpTransportOptions options, MemoryPool<byte> pool) : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        => BindAsync(endpoint, configure: null, cancellationToken);

    /// <param name="configure">Sets options on the socket before it is bound (IP_TRANSPARENT for TPROXY, say).</param>
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, Action<Socket>? configure, CancellationToken cancellationToken = default)
    {
        var protocol = endpoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp;
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, protocol);
        try
        {
            if (endpoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            configure?.Invoke(socket);
            socket.Bind(endpoint);
            socket.Listen(options.Backlog);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return ValueTask.FromResult<IConnectionListener>(new TcpConnectionListener(socket, pool, options));
    }

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint;
}
