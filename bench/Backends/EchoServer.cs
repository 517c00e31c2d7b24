using System.Net;
using System.Net.Sockets;

namespace Forwarder.Bench.Backends;

/// <summary>A built-in TCP echo backend: writes back whatever it reads, for L4 request/response runs.</summary>
internal sealed class EchoServer(IPEndPoint endpoint) : BackendServer(endpoint)
{
    protected override async Task ServeAsync(Socket client)
    {
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await client.ReceiveAsync(buffer, SocketFlags.None, Stopping.Token).ConfigureAwait(false)) > 0)
        {
            await client.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, Stopping.Token).ConfigureAwait(false);
        }

        client.Shutdown(SocketShutdown.Send);
    }
}
