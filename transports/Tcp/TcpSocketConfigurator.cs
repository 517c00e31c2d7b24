using System.Net.Sockets;

namespace Forwarder.Transports.Tcp;

internal static class TcpSocketConfigurator
{
    public static void Apply(Socket socket, TcpTransportOptions options)
    {
        if (socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
        {
            socket.NoDelay = options.NoDelay;
        }

        if (options.ReceiveBufferSize is { } receive)
        {
            socket.ReceiveBufferSize = receive;
        }

        if (options.SendBufferSize is { } send)
        {
            socket.SendBufferSize = send;
        }
    }
}
