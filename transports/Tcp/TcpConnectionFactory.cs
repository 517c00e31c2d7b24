using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// The client side of the TCP transport: dials an endpoint and returns the connection. Given a
/// splicer, it dials IP endpoints through it, so the sockets stay out of .NET's socket engine
/// until (unless) their pipes are used. Given a budget, each socket is counted in it while open,
/// and a dial past its cap fails before socket() is called.
/// </summary>
public sealed class TcpConnectionFactory(TcpTransportOptions options, MemoryPool<byte> pool, SocketSplicer? splicer = null, ConnectionBudget? budget = null) : IConnectionFactory
{
    public async ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (!FileDescriptorReserve.TryHold())
        {
            // The descriptors left are the runtime's (see FileDescriptorReserve): fail as socket() would.
            throw new SocketException((int)SocketError.TooManyOpenSockets);
        }

        if (budget is not null && !budget.TryDial())
        {
            throw ConnectionBudget.Refusal();
        }

        Socket socket;
        try
        {
            socket = Create(endpoint);
        }
        catch (SocketException ex)
        {
            budget?.Release();
            if (ex.SocketErrorCode == SocketError.TooManyOpenSockets)
            {
                FileDescriptorReserve.Release();
            }

            throw;
        }

        FileDescriptorReserve.Check(socket);

        try
        {
            TcpSocketConfigurator.Apply(socket, options);
            if (options.Mark is { } mark)
            {
                SocketMark.Set(socket, mark);
            }

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

        var connection = new TcpConnection(socket, pool, options);
        if (splicer is not null && endpoint is IPEndPoint)
        {
            // The splicer's connect leaves the socket unaware that it is connected (it would not
            // know its peer); the endpoint dialled is the peer, and is shared, not a copy.
            connection.RemoteEndPoint = endpoint;
        }

        return connection;
    }

    private Socket Create(EndPoint endpoint)
    {
        var (family, protocol) = endpoint switch
        {
            DnsEndPoint => (AddressFamily.InterNetworkV6, ProtocolType.Tcp),
            UnixDomainSocketEndPoint => (AddressFamily.Unix, ProtocolType.Unspecified),
            _ => (endpoint.AddressFamily, ProtocolType.Tcp),
        };
        if (budget is null)
        {
            return endpoint is DnsEndPoint ? new Socket(SocketType.Stream, ProtocolType.Tcp) : new Socket(family, SocketType.Stream, protocol);
        }

        var socket = new BudgetedSocket(budget, family, SocketType.Stream, protocol);
        if (endpoint is DnsEndPoint)
        {
            // As new Socket(SocketType, ProtocolType) does: a dual-mode socket reaches IPv4 and IPv6 names.
            socket.DualMode = true;
        }

        return socket;
    }
}
