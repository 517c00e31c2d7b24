using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Bench.Backends;

namespace Forwarder.Bench.Tests.Infrastructure;

/// <summary>
/// An HTTP/1.1 backend that answers its first <c>answers</c> requests (over all connections) and
/// then hangs: it keeps reading and never answers again, the way a wedged upstream does.
/// </summary>
internal sealed class HangingHttpBackend(int answers) : BackendServer(new IPEndPoint(IPAddress.Loopback, 0))
{
    private static readonly byte[] Response = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");

    private int _answered;

    public int Answered => Volatile.Read(ref _answered);

    protected override async Task ServeAsync(Socket client)
    {
        var buffer = new byte[16 * 1024];
        var held = 0;
        while (true)
        {
            var read = await client.ReceiveAsync(buffer.AsMemory(held), SocketFlags.None, Stopping.Token);
            if (read == 0)
            {
                return;
            }

            held += read;
            int end;
            while ((end = buffer.AsSpan(0, held).IndexOf("\r\n\r\n"u8)) >= 0)
            {
                if (Interlocked.Increment(ref _answered) > answers)
                {
                    Interlocked.Decrement(ref _answered);
                    held = 0;
                    break;
                }

                await client.SendAsync(Response, SocketFlags.None, Stopping.Token);
                buffer.AsSpan(end + 4, held - end - 4).CopyTo(buffer);
                held -= end + 4;
            }

            held = held == buffer.Length ? 0 : held;
        }
    }
}
