using System.Net;
using System.Net.Sockets;

namespace Forwarder.Bench.Backends;

/// <summary>A built-in udp echo backend: sends every datagram back to its sender, allocating nothing per datagram.</summary>
internal sealed class UdpEchoServer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Task _serving;

    public UdpEchoServer(IPEndPoint endpoint)
    {
        _socket = new Socket(endpoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(endpoint);
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        _serving = ServeAsync();
    }

    public IPEndPoint EndPoint { get; }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await _serving.ConfigureAwait(false);
    }

    private async Task ServeAsync()
    {
        var buffer = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);
        var from = new SocketAddress(_socket.AddressFamily);
        while (true)
        {
            try
            {
                from.Size = from.Buffer.Length;
                var length = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from).ConfigureAwait(false);
                await _socket.SendToAsync(buffer.AsMemory(0, length), SocketFlags.None, from).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException) when (_socket.SafeHandle.IsClosed)
            {
                return;
            }
            catch (SocketException)
            {
                // One datagram lost (a full buffer, an ICMP error queued): udp allows it.
            }
        }
    }
}
