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
internal sealed class HelloHttpServer : IAsyncDisposable
{
    private static readonly byte[] Response = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!");

    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<Task> _connections = [];
    private long _stalledUntil;
    private long _requests;

    public HelloHttpServer(IPEndPoint endpoint)
    {
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(endpoint);
        _listener.Listen(4096);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Holds every response, on every connection, until <paramref name="duration"/> from now.</summary>
    public void StallFor(TimeSpan duration)
        => Volatile.Write(ref _stalledUntil, Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        await Task.WhenAll(connections).ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            client.NoDelay = true;
            lock (_connections)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                _connections.Add(ServeAsync(client));
            }
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        var buffer = new byte[16 * 1024];
        var held = 0;
        try
        {
            while (true)
            {
                var read = await client.ReceiveAsync(buffer.AsMemory(held), SocketFlags.None, _stop.Token).ConfigureAwait(false);
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
                    await client.SendAsync(Response, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Client gone or server stopping.
        }
    }

    private async ValueTask WaitOutStallAsync()
    {
        var remaining = Volatile.Read(ref _stalledUntil) - Stopwatch.GetTimestamp();
        if (remaining > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(remaining / (double)Stopwatch.Frequency), _stop.Token).ConfigureAwait(false);
        }
    }
}
