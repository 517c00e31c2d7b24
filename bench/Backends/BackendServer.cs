using System.Net;
using System.Net.Sockets;

namespace Forwarder.Bench.Backends;

/// <summary>
/// What the built-in backends share: a listening socket, an accept loop that serves each
/// connection on its own task, and a stop that closes the listener and waits for every connection.
/// </summary>
internal abstract class BackendServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Task _accepting;
    private readonly List<Task> _connections = [];

    protected BackendServer(IPEndPoint endpoint)
    {
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(endpoint);
        _listener.Listen(4096);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Cancelled when the server stops; connections end on it.</summary>
    protected CancellationTokenSource Stopping { get; } = new();

    public async ValueTask DisposeAsync()
    {
        await Stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        await Task.WhenAll(connections).ConfigureAwait(false);
        Stopping.Dispose();
    }

    /// <summary>Serves one accepted connection until it ends; socket errors and the stop are handled by the caller.</summary>
    protected abstract Task ServeAsync(Socket client);

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(Stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            client.NoDelay = true;
            lock (_connections)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                _connections.Add(RunAsync(client));
            }
        }
    }

    private async Task RunAsync(Socket client)
    {
        using var _ = client;
        try
        {
            await ServeAsync(client).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Client gone or server stopping.
        }
    }
}
