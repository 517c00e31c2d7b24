using System.Net;
using System.Net.Sockets;

namespace Forwarder.Tests.Infrastructure;

/// <summary>A real TCP server on a free loopback port, running a handler per accepted socket.</summary>
internal sealed class TcpTestServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Func<Socket, Task> _handler;
    private readonly List<Task> _connections = [];
    private readonly List<Socket> _accepted = [];
    private readonly Task _acceptLoop;
    private int _acceptedCount;

    /// <param name="port">A fixed port, to bring a stopped server back where it was; a free one when 0.</param>
    /// <param name="address">Where to listen; loopback when null.</param>
    public TcpTestServer(Func<Socket, Task> handler, int backlog = 1024, int port = 0, IPAddress? address = null)
    {
        _handler = handler;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(new IPEndPoint(address ?? IPAddress.Loopback, port));
        _listener.Listen(backlog);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint { get; }

    public string Address => EndPoint.ToString();

    public int AcceptedCount => Volatile.Read(ref _acceptedCount);

    /// <summary>Writes back what it reads; answers a FIN with a FIN.</summary>
    public static TcpTestServer Echo(IPAddress? address = null) => new(EchoAsync, address: address);

    public async ValueTask DisposeAsync()
    {
        _listener.Dispose();
        await _acceptLoop;
        Socket[] accepted;
        lock (_accepted)
        {
            accepted = [.. _accepted];
        }

        foreach (var socket in accepted)
        {
            socket.Dispose();
        }

        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        await Task.WhenAll(connections.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default)));
    }

    private static async Task EchoAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
            {
                socket.Shutdown(SocketShutdown.Send);
                return;
            }

            await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync();
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
            {
                return;
            }

            Interlocked.Increment(ref _acceptedCount);
            lock (_accepted)
            {
                _accepted.Add(socket);
            }

            lock (_connections)
            {
                _connections.Add(RunAsync(socket));
            }
        }
    }

    private async Task RunAsync(Socket socket)
    {
        try
        {
            await _handler(socket);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The peer went away; tests assert on what they observed before.
        }
    }
}
