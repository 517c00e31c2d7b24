using System.Buffers.Binary;
using System.Net.Sockets;

namespace Forwarder.Interception;

/// <summary>
/// setsockopt(SOL_SOCKET, SO_MARK) for the forwarder's own udp and health-check sockets: the
/// intercept rules let marked packets pass, so what the forwarder sends to endpoints is never caught.
/// (The tcp transport sets the same option on the sockets it dials.) Needs CAP_NET_ADMIN.
/// </summary>
internal static class SocketMark
{
    private const int SolSocket = 1;
    private const int SoMark = 36;

    public static void Set(Socket socket, int mark)
    {
        Span<byte> value = stackalloc byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(value, mark);
        socket.SetRawSocketOption(SolSocket, SoMark, value);
    }
}
