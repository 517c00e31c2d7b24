using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// The client side of the TCP transport: dials an endpoint and returns the connection. Given a
/// splicer, it dials IP endpoints through it, so the sockets stay out of .NET's socket engine
/// until (unless) their pipes are used.
/// </summary>
public sealed class TcpConnectionFactory(TcpTransportOptions options, MemoryPool<byte> pool, SocketSplicer? splicer = null) : IConnectionFactory
{
    public async ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (!FileDescriptorReserve.TryHold())
        {
            // The descriptors left are the runtime's (see FileDescriptorReserve): fail as socket() would.
            throw new SocketException((int)SocketError.TooManyOpenSockets);
        }

        Socket socket;
        try
        {
            socket = endpoint switch
            {
                DnsEndPoint => new Socket(SocketType.Stream, ProtocolType.Tcp),
                UnixDomainSocketEndPoint => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
                _ => new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp),
            };
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TooManyOpenSockets)
        {
            FileDescriptorReserve.Release();
            throw;
        }

        FileDescriptorReserve.Check(socket);

        try
        {
            TcpSocketConfigurator.Apply(socket, options);
            if (splicer is not null && endpoint is IPEndPoint)
            {
                await splicer.ConnectAsync(socket, endpoint, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new TcpConnection(socket, pool, options);
    }
}
