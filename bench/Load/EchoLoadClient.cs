using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>TCP request/response: writes a fixed-size message and reads the same number of bytes back (an echo server, or the forwarder in front of one).</summary>
internal sealed class EchoLoadClient : SocketLoadClient
{
    private readonly byte[] _message;
    private readonly byte[] _buffer;

    public EchoLoadClient(EndPoint endpoint, int size)
        : base(endpoint)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        _message = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        Random.Shared.NextBytes(_message);
        _buffer = GC.AllocateUninitializedArray<byte>(Math.Min(size, 64 * 1024), pinned: true);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<Response> ExchangeAsync()
    {
        try
        {
            var socket = await Connection.ConnectedAsync().ConfigureAwait(false);
            await socket.SendAsync(_message, SocketFlags.None).ConfigureAwait(false);
            var received = 0;
            while (received < _message.Length)
            {
                var read = await socket.ReceiveAsync(_buffer.AsMemory(0, Math.Min(_buffer.Length, _message.Length - received)), SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    Connection.Close();
                    return Response.Fail("connection closed before the echo ended", null, received);
                }

                received += read;
            }

            return Response.Ok(null, received);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            return Connection.Fail(ex);
        }
    }

}
