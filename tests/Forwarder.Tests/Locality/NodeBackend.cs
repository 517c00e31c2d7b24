using System.Net;
using System.Net.Sockets;

namespace Forwarder.Tests.Locality;

/// <summary>A backend inside a node's namespace that sends its node's name on accept; it can die and come back on the same address.</summary>
internal sealed class NodeBackend : IAsyncDisposable
{
    private readonly string _namespace;
    private Socket? _listener;
    private Task _accepting = Task.CompletedTask;

    public NodeBackend(string name, string ns, IPEndPoint endPoint)
    {
        Name = name;
        _namespace = ns;
        EndPoint = endPoint;
        Start();
    }

    public string Name { get; }

    public IPEndPoint EndPoint { get; }

    /// <summary>Listens again, as a restarted pod would.</summary>
    public void Start()
    {
        _listener = LocalityLab.ListenIn(_namespace, EndPoint);
        _accepting = AcceptAsync(_listener);
    }

    /// <summary>The backend's process dies: its listener closes, so new connects are refused.</summary>
    public async Task KillAsync()
    {
        _listener?.Dispose();
        _listener = null;
        await _accepting;
    }

    public async ValueTask DisposeAsync() => await KillAsync();

    private async Task AcceptAsync(Socket listener)
    {
        var reply = System.Text.Encoding.ASCII.GetBytes(Name + "\n");
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await listener.AcceptAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            using var socket = accepted;
            try
            {
                await socket.SendAsync(reply, SocketFlags.None);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // The client went away first; nothing to tell it.
            }
        }
    }
}
