using System.Net;
using System.Net.Sockets;

namespace Forwarder.Tests.Infrastructure;

/// <summary>
/// A network path that can be cut and restored: a loopback port that, while open, passes
/// connections through to a target, and while cut, closes new ones at once. Cutting also resets
/// every connection passing through, as a link whose route disappeared eventually is.
/// </summary>
internal sealed class SwitchablePath : IAsyncDisposable
{
    private readonly IPEndPoint _target;
    private readonly TcpTestServer _server;
    private readonly List<Socket> _open = [];
    private volatile bool _passing;

    public SwitchablePath(IPEndPoint target, bool passing)
    {
        _target = target;
        _passing = passing;
        _server = new TcpTestServer(PassAsync);
    }

    public string Address => _server.Address;

    public void Restore() => _passing = true;

    public void Cut()
    {
        _passing = false;
        lock (_open)
        {
            foreach (var socket in _open)
            {
                // A reset, not a FIN: what a path that vanished eventually gives.
                socket.LingerState = new LingerOption(true, 0);
                socket.Dispose();
            }

            _open.Clear();
        }
    }

    public ValueTask DisposeAsync()
    {
        Cut();
        return _server.DisposeAsync();
    }

    private async Task PassAsync(Socket client)
    {
        using (client)
        {
            if (!_passing)
            {
                return;
            }

            using var upstream = await SocketClient.ConnectAsync(_target);
            lock (_open)
            {
                _open.Add(client);
                _open.Add(upstream);
            }

            await Task.WhenAny(CopyAsync(client, upstream), CopyAsync(upstream, client));
            lock (_open)
            {
                // Gone from the list before the usings dispose them, so Cut never touches a disposed socket.
                _open.Remove(client);
                _open.Remove(upstream);
            }
        }
    }

    private static async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Cut.
        }
    }
}
