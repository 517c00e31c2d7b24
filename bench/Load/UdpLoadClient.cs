using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>
/// Udp request/response: sends a datagram of a fixed size from a connected socket and waits for
/// one datagram back (an echo server, or a udp listener in front of one). A lost datagram is a
/// timeout; the socket is then replaced, which a proxy sees as a new client (a new session).
/// </summary>
internal sealed class UdpLoadClient : SocketLoadClient
{
    private readonly byte[] _message;
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(64 * 1024, pinned: true);

    public UdpLoadClient(EndPoint endpoint, int size)
        : base(endpoint, SocketType.Dgram)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, 65_507);
        _message = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        Random.Shared.NextBytes(_message);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<Response> ExchangeAsync()
    {
        try
        {
            var socket = await Connection.ConnectedAsync().ConfigureAwait(false);
            // As Memory: a byte[] would pick the ArraySegment overloads, which allocate a Task per call.
            await socket.SendAsync(_message.AsMemory(), SocketFlags.None).ConfigureAwait(false);
            var read = await socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None).ConfigureAwait(false);
            return read == _message.Length ? Response.Ok(null, read) : Response.Fail($"a reply of {read} bytes to a {_message.Length}-byte datagram", null, read);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return Connection.Fail(ex);
        }
    }
}
