using System.Net;
using System.Net.Sockets;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>The connection (or connected udp socket) a load client keeps open between exchanges, and how its failures are named.</summary>
internal sealed class LoadSocket(EndPoint endpoint, SocketType type = SocketType.Stream)
{
    private Socket? _socket;

    public EndPoint EndPoint { get; } = endpoint;

    /// <summary>The open socket, connecting first if there is none.</summary>
    public async ValueTask<Socket> ConnectedAsync()
    {
        if (Volatile.Read(ref _socket) is { } open)
        {
            return open;
        }

        var socket = type == SocketType.Dgram ? new Socket(SocketType.Dgram, ProtocolType.Udp) : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(EndPoint).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        Volatile.Write(ref _socket, socket);
        return socket;
    }

    public void Close() => Interlocked.Exchange(ref _socket, null)?.Dispose();

    /// <summary>Closes the socket from another thread; the exchange waiting on it fails.</summary>
    public void Abort() => Volatile.Read(ref _socket)?.Dispose();

    /// <summary>Turns what went wrong into a failed response, and drops the connection so the next exchange starts clean.</summary>
    public Response Fail(Exception error)
    {
        Close();
        return Response.Fail(error switch
        {
            SocketException { SocketErrorCode: SocketError.ConnectionRefused } => "connection refused",
            SocketException { SocketErrorCode: SocketError.ConnectionReset } => "connection reset",
            SocketException socket => $"socket error {socket.SocketErrorCode}",
            ObjectDisposedException or OperationCanceledException => "aborted",
            _ => $"{error.GetType().Name}: {error.Message}",
        });
    }
}
