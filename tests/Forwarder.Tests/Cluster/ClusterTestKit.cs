using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Tests.Infrastructure;

namespace Forwarder.Tests.Cluster;

/// <summary>Backends that say who they are, and a forwarder config that routes to a discovered service.</summary>
internal static class ClusterTestKit
{
    public static string Config(Uri apiServer, string? cacheFile = null, string? namespaces = null) => $$"""
        admin: { listen: 127.0.0.1:0 }
        cluster:
          kubernetes:
            apiServer: {{apiServer}}
            tokenFile: /nonexistent/token
        {{(cacheFile is null ? string.Empty : $"    cacheFile: {cacheFile}")}}
        {{(namespaces is null ? string.Empty : $"    namespaces: [{namespaces}]")}}
        listeners:
          - { name: web, listen: 127.0.0.1:0, protocol: tcp, service: default/web:80 }
        """;

    /// <summary>A backend on <paramref name="address"/> that sends <paramref name="id"/> on accept, then echoes.</summary>
    public static TcpTestServer Backend(char id, IPAddress address, int port = 0) => new(
        async socket =>
        {
            await socket.SendAsync(new[] { (byte)id }, SocketFlags.None);
            var buffer = new byte[4096];
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }

            socket.Shutdown(SocketShutdown.Send);
        },
        port: port,
        address: address);

    /// <summary>Two backends on one port (endpoints of a slice share its port), on 127.0.0.2 and 127.0.0.3.</summary>
    public static (TcpTestServer A, TcpTestServer B) TwoBackends()
    {
        var a = Backend('A', IPAddress.Parse("127.0.0.2"));
        return (a, Backend('B', IPAddress.Parse("127.0.0.3"), a.EndPoint.Port));
    }

    /// <summary>Connects through the listener and reads the backend's id; null when the forwarder closes the connection instead.</summary>
    public static async Task<(Socket Socket, char? Id)> ConnectAsync(IPEndPoint listener)
    {
        var socket = await SocketClient.ConnectAsync(listener);
        try
        {
            var id = await SocketClient.ReceiveExactlyAsync(socket, 1);
            return (socket, (char)id[0]);
        }
        catch (Exception ex) when (ex is EndOfStreamException or SocketException)
        {
            return (socket, null);
        }
    }

    /// <summary>Waits until a new connection through <paramref name="listener"/> reaches backend <paramref name="id"/> (null: is refused).</summary>
    public static Task ReachesAsync(IPEndPoint listener, char? id, string because, TimeSpan? timeout = null) => Eventually.TrueAsync(
        async () =>
        {
            var (socket, reached) = await ConnectAsync(listener);
            socket.Dispose();
            return reached == id;
        },
        because,
        timeout ?? TimeSpan.FromSeconds(60));

    public static async Task AssertEchoAsync(Socket socket, string message)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(message), SocketFlags.None);
        Assert.Equal(message, Encoding.ASCII.GetString(await SocketClient.ReceiveExactlyAsync(socket, message.Length)));
    }

    /// <summary>A loopback port nothing listens on (yet): where an API server that is down would be.</summary>
    public static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
