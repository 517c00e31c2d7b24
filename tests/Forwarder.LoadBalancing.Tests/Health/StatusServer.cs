using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.LoadBalancing.Tests.Health;

/// <summary>
/// A loopback HTTP/1.1 server that answers every request with <see cref="Status"/> (or, when
/// <see cref="Silent"/>, reads the request and never answers), and records request heads.
/// </summary>
internal sealed class StatusServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<Socket> _open = [];

    public StatusServer(int port = 0)
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        _listener.Listen(128);
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public volatile int Status = 200;

    public volatile bool Silent;

    public string? LastRequestHead { get; private set; }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _accepting;
        lock (_open)
        {
            foreach (var socket in _open)
            {
                socket.Dispose();
            }
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_open)
            {
                _open.Add(client);
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        try
        {
            var buffer = new byte[4096];
            var received = 0;
            while (received < buffer.Length && buffer.AsSpan(0, received).IndexOf("\r\n\r\n"u8) < 0)
            {
                var read = await client.ReceiveAsync(buffer.AsMemory(received), _stop.Token);
                if (read == 0)
                {
                    return;
                }

                received += read;
            }

            LastRequestHead = Encoding.ASCII.GetString(buffer, 0, received);
            if (Silent)
            {
                return;
            }

            await client.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {Status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), _stop.Token);
            client.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The check gave up or the server stopped.
        }
    }
}
