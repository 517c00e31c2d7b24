using System.Net.Sockets;

namespace Forwarder.Transports.Tcp;

internal static class TcpSocketConfigurator
{
    private const int SolSocket = 1;
    private const int SoMark = 36;

    /// <summary>setsockopt(SOL_SOCKET, SO_MARK): the mark every packet of the socket carries through netfilter.</summary>
    public static void SetMark(Socket socket, int mark)
    {
        Span<byte> value = stackalloc byte[sizeof(int)];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(value, mark);
        socket.SetRawSocketOption(SolSocket, SoMark, value);
    }

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
