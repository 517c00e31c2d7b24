using System.Buffers.Binary;
using System.Net.Sockets;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// setsockopt(SOL_SOCKET, SO_MARK): the mark every packet of the socket carries through netfilter.
/// Interception's rules let marked packets pass, so the forwarder marks what it sends to endpoints
/// (dialled tcp sockets, udp session sockets, health checks) and is never caught by its own rules.
/// Needs CAP_NET_ADMIN.
/// </summary>
public static class SocketMark
{
    private const int SolSocket = 1;
    private const int SoMark = 36;

    /// <summary>Marks every packet <paramref name="socket"/> sends from now on with <paramref name="mark"/>.</summary>
    public static void Set(Socket socket, int mark)
    {
        Span<byte> value = stackalloc byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(value, mark);
        socket.SetRawSocketOption(SolSocket, SoMark, value);
    }
}
