using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Bench.Backends;

/// <summary>
/// A built-in HTTP/1.1 backend that answers every request with a short fixed body, keep-alive and
/// pipelining included, so runs need nothing installed. It can be told to stall (hold every
/// response) for a while, the way a GC pause or a stopped process would: the coordinated-omission
/// experiment needs exactly that.
/// </summary>
internal sealed class HelloHttpServer(IPEndPoint endpoint) : BackendServer(endpoint)
{
    private static readonly byte[] Response = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!");

    private long _stalledUntil;
    private long _requests;

    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Holds every response, on every connection, until <paramref name="duration"/> from now.</summary>
    public void StallFor(TimeSpan duration)
        => Volatile.Write(ref _stalledUntil, Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency));

    protected override async Task ServeAsync(Socket client)
    {
        var buffer = new byte[16 * 1024];
        var held = 0;
        while (true)
        {
            var read = await client.ReceiveAsync(buffer.AsMemory(held), SocketFlags.None, Stopping.Token).ConfigureAwait(false);
            if (read == 0)
            {
                return;
            }

            held += read;
            var answered = 0;
            var data = buffer.AsSpan(0, held);
            int end;
            while ((end = data.IndexOf("\r\n\r\n"u8)) >= 0)
            {
                // Bodies are not expected (GET); each complete head gets one response.
                answered++;
                data = data[(end + 4)..];
            }

            if (data.Length == buffer.Length)
            {
                return;
            }

            data.CopyTo(buffer);
            held = data.Length;
            if (answered == 0)
            {
                continue;
            }

            await WaitOutStallAsync().ConfigureAwait(false);
            Interlocked.Add(ref _requests, answered);
            for (var i = 0; i < answered; i++)
            {
                await client.SendAsync(Response, SocketFlags.None, Stopping.Token).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask WaitOutStallAsync()
    {
        var remaining = Volatile.Read(ref _stalledUntil) - Stopwatch.GetTimestamp();
        if (remaining > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(remaining / (double)Stopwatch.Frequency), Stopping.Token).ConfigureAwait(false);
        }
    }
}
