using System.Net;
using System.Net.Sockets;

namespace Forwarder.Tests.Infrastructure;

/// <summary>Plain socket helpers for test clients.</summary>
internal static class SocketClient
{
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(30);

    public static async Task<Socket> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        using var timeout = new CancellationTokenSource(ReadTimeout);
        var filled = 0;
        while (filled < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, timeout.Token);
            if (read == 0)
            {
                throw new EndOfStreamException($"Connection closed after {filled} of {count} bytes.");
            }

            filled += read;
        }

        return buffer;
    }

    /// <summary>Reads until the peer's FIN; throws <see cref="SocketException"/> on a reset.</summary>
    public static async Task<byte[]> ReceiveToEndAsync(Socket socket, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? ReadTimeout);
        using var all = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token);
            if (read == 0)
            {
                return all.ToArray();
            }

            all.Write(buffer, 0, read);
        }
    }

    /// <summary>Sends a message and expects the same bytes back (through an echo backend).</summary>
    public static async Task AssertEchoAsync(Socket socket, string message)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(message);
        await socket.SendAsync(bytes, SocketFlags.None);
        var echoed = await ReceiveExactlyAsync(socket, bytes.Length);
        Assert.Equal(message, System.Text.Encoding.ASCII.GetString(echoed));
    }

    /// <summary>True when the peer closes or resets the connection within the read timeout (bytes before the close are read and dropped).</summary>
    public static async Task<bool> ClosedAsync(Socket socket)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(ReadTimeout);
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) > 0)
            {
                // A TLS alert or data in flight may come first; the close is what counts.
            }

            return true;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
