using System.Net;
using System.Net.Sockets;

namespace Forwarder.Bench.Compare;

/// <summary>Loopback ports nobody listens on, for the processes a comparison starts.</summary>
internal static class FreePort
{
    public static IPEndPoint Next()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)socket.LocalEndPoint!;
    }
}
