using System.Buffers;
using Forwarder.Transports.Features;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <content>A peer that breaks the protocol (garbage, data past the window, ids out of turn) or stops answering ends the session, and only it.</content>
public sealed partial class YamuxSessionTests
{
    [Fact]
    public async Task Garbage_EndsTheSessionWithAProtocolError_AndResetsItsStreams()
    {
        await using var client = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        await using var server = new YamuxSession(serverConnection, isClient: false);
        server.Start();

        // A valid stream first, then a header with version 7.
        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 1, 0));
        await using var stream = (await server.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        var garbage = Frame(YamuxFrameType.Data, YamuxFlags.None, 1, 0);
        garbage[0] = 7;
        await client.Transport.Output.WriteAsync(garbage);

        await server.Completion.WaitAsync(Timeout);
        await Assert.ThrowsAsync<ConnectionResetException>(async () => await stream.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout));

        // What the client got: the ACK for its stream, then a protocol-error go-away.
        var sent = await ReadFramesAsync(client, 2);
        Assert.Equal((YamuxFrameType.WindowUpdate, YamuxFlags.Ack, 1u, 0u), sent[0]);
        Assert.Equal((YamuxFrameType.GoAway, YamuxFlags.None, 0u, (uint)YamuxGoAwayCode.ProtocolError), sent[1]);
    }

    [Fact]
    public async Task DataBeyondTheWindow_IsAProtocolError()
    {
        await using var client = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        await using var server = new YamuxSession(serverConnection, isClient: false);
        server.Start();

        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 1, 0));
        var chunk = new byte[200 * 1024];
        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.Data, YamuxFlags.None, 1, (uint)chunk.Length));
        await client.Transport.Output.WriteAsync(chunk);
        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.Data, YamuxFlags.None, 1, (uint)chunk.Length));
        await client.Transport.Output.WriteAsync(chunk);

        await server.Completion.WaitAsync(Timeout);
        var sent = await ReadFramesAsync(client, 2);
        Assert.Equal((YamuxFrameType.GoAway, YamuxFlags.None, 0u, (uint)YamuxGoAwayCode.ProtocolError), sent[1]);
    }

    [Fact]
    public async Task KeepAlive_KeepsAQuietHealthySession_AndEndsOneWhosePeerNeverAnswers()
    {
        // The healthy pair pings every 100 ms and allows a loaded machine 2 s to answer; staying up
        // for 3 s proves the pings are answered. The mute peer's session gives up after 500 ms.
        var patient = new YamuxOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(100), PingTimeout = TimeSpan.FromSeconds(2) };
        var quick = new YamuxOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(100), PingTimeout = TimeSpan.FromMilliseconds(500) };
        await using var pair = await SessionPairAsync(patient, patient);
        var quiet = System.Diagnostics.Stopwatch.StartNew();
        await WaitUntilAsync(() => quiet.ElapsedMilliseconds > 3000, "keep-alive rounds pass for longer than the ping timeout");
        Assert.False(pair.Client.Completion.IsCompleted);
        Assert.False(pair.Server.Completion.IsCompleted);

        // A peer that reads nothing and answers nothing.
        await using var mute = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        await using var server = new YamuxSession(serverConnection, isClient: false, quick);
        server.Start();
        await server.Completion.WaitAsync(Timeout);
    }

    [Fact]
    public async Task SynsOutOfIdOrder_OpenEveryStream()
    {
        await using var client = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        await using var server = new YamuxSession(serverConnection, isClient: false);
        server.Start();

        // A peer opening from several threads takes ids in order but may send the SYNs in any.
        foreach (var id in new uint[] { 5, 1, 9, 3, 7 })
        {
            await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, id, 0));
        }

        var accepted = new List<uint>();
        for (var i = 0; i < 5; i++)
        {
            accepted.Add((await server.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!.Id);
        }

        Assert.Equal([5u, 1u, 9u, 3u, 7u], accepted);
        Assert.False(server.Completion.IsCompleted, $"the session ended: {server.Failure}");
        var sent = await ReadFramesAsync(client, 5);
        Assert.All(sent, frame => Assert.Equal(YamuxFlags.Ack, frame.Item2));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AReusedStreamId_OpenOrClosed_IsAProtocolError(bool closedFirst)
    {
        await using var client = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        await using var server = new YamuxSession(serverConnection, isClient: false);
        server.Start();

        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 3, 0));
        var stream = (await server.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        if (closedFirst)
        {
            stream.Abort(new ConnectionAbortedException("test"));
            await WaitUntilAsync(() => server.StreamCount == 0, "the stream is forgotten");
        }

        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 3, 0));
        await server.Completion.WaitAsync(Timeout);
        Assert.IsType<YamuxProtocolException>(server.Failure);
        var sent = await ReadFramesAsync(client, closedFirst ? 3 : 2);
        Assert.Equal((YamuxFrameType.GoAway, YamuxFlags.None, 0u, (uint)YamuxGoAwayCode.ProtocolError), sent[^1]);
    }

    [Fact]
    public async Task AnIdOfOurParity_IsAProtocolError()
    {
        await using var client = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        await using var server = new YamuxSession(serverConnection, isClient: false);
        server.Start();

        await client.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 2, 0));
        await server.Completion.WaitAsync(Timeout);
        Assert.IsType<YamuxProtocolException>(server.Failure);
    }

    [Fact]
    public async Task APeerThatHalfClosesAndStopsReading_HasTheConnectionAborted_AfterTheCloseTimeout()
    {
        await using var peer = await new TcpConnectionFactory(_options, _pool).ConnectAsync(_listener.EndPoint);
        await using var serverConnection = (await _listener.AcceptAsync())!;
        var options = new YamuxOptions { KeepAliveInterval = TimeSpan.Zero, CloseTimeout = TimeSpan.FromSeconds(1) };
        await using var server = new YamuxSession(serverConnection, isClient: false, options);
        server.Start();

        // The peer opens a stream, grants it far more than the sockets hold, and reads nothing.
        await peer.Transport.Output.WriteAsync(Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Syn, 1, 256 * 1024 * 1024));
        await using var stream = (await server.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        var direct = stream.Features.Get<IDirectSendFeature>()!;
        var sending = Task.Run(async () =>
        {
            var chunk = new ReadOnlySequence<byte>(new byte[256 * 1024]);
            while (true)
            {
                await direct.SendAsync(chunk);
            }
        });

        // The session's queue is full only once the connection stopped taking frames.
        await WaitUntilAsync(() => server.QueuedBytes >= 1024 * 1024, "more than 1 MiB is queued behind the unread socket");
        peer.Transport.Output.Complete();

        await server.Completion.WaitAsync(Timeout);
        Assert.True(server.OutputCut, "the session gave up on its queued frames");
        await Assert.ThrowsAsync<ConnectionResetException>(() => sending.WaitAsync(Timeout));
    }
}
