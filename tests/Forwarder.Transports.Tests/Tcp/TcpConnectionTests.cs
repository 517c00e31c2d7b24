using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forwarder.Transports.Features;
using Forwarder.Transports.Tcp;
using Forwarder.Transports.Tcp.Splicing;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Forwarder.Transports.Tests.Tcp;

public sealed class TcpConnectionTests : TcpListenerFixture
{
    [Fact]
    public async Task AcceptAndConnect_BytesFlowBothWaysThroughPipes()
    {
        await using var client = await new TcpConnectionFactory(Options, Pool).ConnectAsync(Listener.EndPoint);
        await using var server = (await Listener.AcceptAsync())!;

        await PingPongAsync(client, server);
        Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
    }

    [Fact]
    public async Task CompletingOutput_SendsFin_InputKeepsFlowing()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;

        await server.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("last words"));
        await server.Transport.Output.CompleteAsync();
        var received = await ReceiveToEndAsync(peer);
        await peer.SendAsync(Encoding.ASCII.GetBytes("reply after FIN"), SocketFlags.None);

        Assert.Equal("last words", received);
        Assert.Equal("reply after FIN", await ReadStringAsync(server, 15));
    }

    [Fact]
    public async Task PeerFin_CompletesInput_OutputStillWorks()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;

        peer.Shutdown(SocketShutdown.Send);
        var result = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.True(result.IsCompleted);
        server.Transport.Input.AdvanceTo(result.Buffer.End);
        await server.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("answer"));
        await server.Transport.Output.CompleteAsync();

        Assert.Equal("answer", await ReceiveToEndAsync(peer));
    }

    [Fact]
    public async Task Reset_PeerSeesConnectionReset()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;

        server.Features.Get<IConnectionResetFeature>()!.Reset();

        var error = await Assert.ThrowsAsync<SocketException>(() => ReceiveToEndAsync(peer));
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Fact]
    public async Task PeerReset_InputFailsWithConnectionResetException()
    {
        var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;

        peer.LingerState = new LingerOption(true, 0);
        peer.Dispose();

        await Assert.ThrowsAsync<ConnectionResetException>(async () =>
        {
            while (true)
            {
                var result = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout);
                server.Transport.Input.AdvanceTo(result.Buffer.End);
                Assert.False(result.IsCompleted, "a reset must not look like a FIN");
            }
        });
    }

    [Fact]
    public async Task DirectSend_MultiSegmentBuffer_ArrivesInOrder()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;
        var first = new Segment(Encoding.ASCII.GetBytes("hello, "));
        var last = first.Append(Encoding.ASCII.GetBytes("direct ")).Append(Encoding.ASCII.GetBytes("send"));

        await server.Features.Get<IDirectSendFeature>()!.SendAsync(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));
        await server.Transport.Output.CompleteAsync();

        Assert.Equal("hello, direct send", await ReceiveToEndAsync(peer));
    }

    [Fact]
    public async Task DirectSend_MoreSegmentsThanOneSendTakes_ArrivesWhole()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;
        var expected = string.Concat(Enumerable.Range(0, 21).Select(i => $"segment {i:D2};"));
        var first = new Segment(Encoding.ASCII.GetBytes("segment 00;"));
        var last = first;
        for (var i = 1; i < 21; i++)
        {
            last = last.Append(Encoding.ASCII.GetBytes($"segment {i:D2};"));
        }

        await server.Features.Get<IDirectSendFeature>()!.SendAsync(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));
        await server.Transport.Output.CompleteAsync();

        Assert.Equal(expected, await ReceiveToEndAsync(peer));
    }

    [Fact]
    public async Task Abort_PendingReadEnds_AndClosedTokenFires()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;
        var reading = server.Transport.Input.ReadAsync().AsTask();

        server.Abort(new ConnectionAbortedException("test abort"));

        await Assert.ThrowsAsync<ConnectionAbortedException>(() => reading.WaitAsync(Timeout));
        Assert.True(server.ConnectionClosed.IsCancellationRequested);
        Assert.Equal(string.Empty, await ReceiveToEndAsync(peer));
    }

    [Fact]
    public async Task ClosedToken_MadeBeforeTheAbort_FiresOnIt()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;
        var token = server.ConnectionClosed;
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = token.Register(() => fired.TrySetResult());
        Assert.False(token.IsCancellationRequested);

        server.Abort(new ConnectionAbortedException("test abort"));

        await fired.Task.WaitAsync(Timeout);
        Assert.Equal(token, server.ConnectionClosed);
    }

    [Fact]
    public async Task Accept_AppliesNoDelay_AndExposesSocket()
    {
        using var peer = await ConnectRawAsync();
        await using var server = (await Listener.AcceptAsync())!;

        Assert.True(server.Features.Get<IConnectionSocketFeature>()!.Socket.NoDelay);
    }

    [Fact]
    public async Task Unbind_PendingAcceptReturnsNull()
    {
        var accepting = Listener.AcceptAsync().AsTask();

        await Listener.UnbindAsync();

        Assert.Null(await accepting.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Connect_NothingListening_ThrowsConnectionRefused()
    {
        using var probe = BoundNotListening();
        var closedPort = probe.LocalEndPoint!;

        var error = await Assert.ThrowsAsync<SocketException>(() => new TcpConnectionFactory(Options, Pool).ConnectAsync(closedPort).AsTask());

        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
    }

    /// <summary>
    /// Dialled through the splicer (connect(2) on the descriptor, so .NET's socket object never
    /// learns that it is connected): the pipes still carry bytes both ways, and the connection's
    /// peer is the endpoint dialled.
    /// </summary>
    [Fact]
    public async Task ConnectThroughSplicer_BytesFlowBothWaysThroughPipes_PeerIsTheEndpointDialled()
    {
        using var splicer = new SocketSplicer(1);
        await using var client = await new TcpConnectionFactory(Options, Pool, splicer).ConnectAsync(Listener.EndPoint);
        await using var server = (await Listener.AcceptAsync())!;

        await PingPongAsync(client, server);
        Assert.Equal(Listener.EndPoint, client.RemoteEndPoint);
    }

    [Fact]
    public async Task ConnectThroughSplicer_NothingListening_ThrowsConnectionRefused()
    {
        using var splicer = new SocketSplicer(1);
        using var probe = BoundNotListening();
        var closedPort = probe.LocalEndPoint!;

        var error = await Assert.ThrowsAsync<SocketException>(() => new TcpConnectionFactory(Options, Pool, splicer).ConnectAsync(closedPort).AsTask());

        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
    }

    /// <summary>A socket holding a loopback port without listening on it: dials to it are refused, and no other test takes the port meanwhile.</summary>
    private static Socket BoundNotListening()
    {
        var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return probe;
    }

    private static async Task PingPongAsync(ConnectionContext client, ConnectionContext server)
    {
        await client.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("ping"));
        Assert.Equal("ping", await ReadStringAsync(server, 4));
        await server.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("pong"));
        Assert.Equal("pong", await ReadStringAsync(client, 4));
    }

    private async Task<Socket> ConnectRawAsync()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(Listener.EndPoint);
        return socket;
    }

    private static async Task<string> ReadStringAsync(ConnectionContext connection, int length)
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            if (result.Buffer.Length >= length || result.IsCompleted)
            {
                var text = Encoding.ASCII.GetString(result.Buffer.Slice(0, Math.Min(length, result.Buffer.Length)));
                input.AdvanceTo(result.Buffer.GetPosition(Math.Min(length, result.Buffer.Length)));
                return text;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private static async Task<string> ReceiveToEndAsync(Socket socket)
    {
        using var cancel = new CancellationTokenSource(Timeout);
        var all = new StringBuilder();
        var buffer = new byte[1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token)) > 0)
        {
            all.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return all.ToString();
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes) => Memory = bytes;

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
