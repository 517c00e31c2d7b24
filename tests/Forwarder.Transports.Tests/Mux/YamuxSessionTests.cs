using System.Net;
using System.Security.Cryptography;
using System.Text;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <summary>
/// Two yamux sessions over a real loopback TCP connection (or one session against raw frames
/// written by the test): streams both ways, flow control past the window, half-close, reset,
/// limits, pings, go-away, and garbage that ends the session and nothing else.
/// </summary>
public sealed partial class YamuxSessionTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly TcpTransportOptions _options = new();
    private readonly PinnedBlockMemoryPool _pool = new(4096);
    private IConnectionListener _listener = null!;

    public async Task InitializeAsync()
        => _listener = await new TcpListenerFactory(_options, _pool).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

    public async Task DisposeAsync()
    {
        await _listener.DisposeAsync();
        _pool.Dispose();
    }

    [Fact]
    public async Task StreamsOpenFromEitherSide_AndCarryBytesBothWays()
    {
        await using var pair = await SessionPairAsync();

        await using var fromClient = pair.Client.OpenStream();
        await fromClient.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("hello server"));
        await using var atServer = (await pair.Server.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        Assert.Equal(1u, fromClient.Id);
        Assert.Equal("hello server", await ReadStringAsync(atServer, 12));
        await atServer.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("hello client"));
        Assert.Equal("hello client", await ReadStringAsync(fromClient, 12));

        await using var fromServer = pair.Server.OpenStream();
        await fromServer.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("pushed"));
        await using var atClient = (await pair.Client.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        Assert.Equal(2u, fromServer.Id);
        Assert.Equal("pushed", await ReadStringAsync(atClient, 6));
    }

    [Fact]
    public async Task ManyTimesTheWindow_ArrivesWhole_OnManyStreamsAtOnce()
    {
        await using var pair = await SessionPairAsync();
        const int Streams = 20;
        const int Size = 3 * 1024 * 1024;

        var echoes = Task.Run(async () =>
        {
            var served = new List<Task>();
            for (var i = 0; i < Streams; i++)
            {
                var stream = (await pair.Server.AcceptStreamAsync())!;
                served.Add(EchoAsync(stream));
            }

            await Task.WhenAll(served);
        });

        var clients = Enumerable.Range(0, Streams).Select(async i =>
        {
            await using var stream = pair.Client.OpenStream();
            var data = RandomNumberGenerator.GetBytes(Size);
            var sending = Task.Run(async () =>
            {
                for (var offset = 0; offset < data.Length; offset += 100_000)
                {
                    await stream.Transport.Output.WriteAsync(data.AsMemory(offset, Math.Min(100_000, data.Length - offset)));
                }

                await stream.Transport.Output.CompleteAsync();
            });
            var echoed = await ReadToEndAsync(stream);
            await sending;
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(echoed));
        });
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(120));
        await echoes.WaitAsync(Timeout);
    }

    [Fact]
    public async Task AReaderThatStops_StopsItsSender_AtTheWindow_WithoutStallingOtherStreams()
    {
        await using var pair = await SessionPairAsync();
        await using var slow = pair.Client.OpenStream();
        await using var slowAtServer = (await AcceptAfterWriteAsync(pair, slow))!;

        // Nobody reads slowAtServer: the sender may get one window (256 KiB) out, then waits.
        var flood = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            for (var i = 0; i < 64; i++)
            {
                await slow.Transport.Output.WriteAsync(chunk);
            }
        });

        await using var other = pair.Client.OpenStream();
        await using var otherAtServer = (await AcceptAfterWriteAsync(pair, other))!;
        await other.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("still flowing"));
        Assert.Equal("xstill flowing", await ReadStringAsync(otherAtServer, 14));
        Assert.False(flood.IsCompleted, "the sender went past the window and its output buffer");

        // Reading lets it go on to the end.
        var received = 0L;
        while (received < 1 + (64 * 64 * 1024))
        {
            var result = await slowAtServer.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout);
            received += result.Buffer.Length;
            slowAtServer.Transport.Input.AdvanceTo(result.Buffer.End);
        }

        await flood.WaitAsync(Timeout);
    }

    [Fact]
    public async Task HalfClose_EndsOneDirection_TheOtherGoesOn_ThenTheStreamIsGone()
    {
        await using var pair = await SessionPairAsync();
        var stream = pair.Client.OpenStream();
        var atServer = (await AcceptAfterWriteAsync(pair, stream))!;

        await stream.Transport.Output.CompleteAsync();
        Assert.Equal("x", Encoding.ASCII.GetString(await ReadToEndAsync(atServer)));
        await atServer.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("reply after FIN"));
        await atServer.Transport.Output.CompleteAsync();
        Assert.Equal("reply after FIN", Encoding.ASCII.GetString(await ReadToEndAsync(stream)));

        await WaitUntilAsync(() => pair.Client.StreamCount == 0 && pair.Server.StreamCount == 0, "both sides forget the closed stream");
        Assert.True(stream.ConnectionClosed.IsCancellationRequested);
        await stream.DisposeAsync();
        await atServer.DisposeAsync();
    }

    [Fact]
    public async Task AStreamDisposedTheMomentItsInputEnds_StillSignalsConnectionClosed()
    {
        // The application may see the peer's FIN and dispose the stream before the session's
        // reader has finished handling that FIN; the closed signal must fire either way.
        var closed = 0;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            await using var pair = await SessionPairAsync();
            for (var i = 0; i < 250; i++)
            {
                var stream = pair.Client.OpenStream();
                stream.ConnectionClosed.Register(() => Interlocked.Increment(ref closed));
                var atServer = (await AcceptAfterWriteAsync(pair, stream))!;
                await stream.Transport.Output.CompleteAsync();
                await ReadToEndAsync(atServer);
                await atServer.Transport.Output.CompleteAsync();
                await ReadToEndAsync(stream);
                await stream.DisposeAsync();
                await atServer.DisposeAsync();
            }
        })));

        await WaitUntilAsync(() => Volatile.Read(ref closed) == 4 * 250, "every disposed stream signalled ConnectionClosed");
    }

    [Fact]
    public async Task Abort_ResetsThePeersStream_AndOnlyIt()
    {
        await using var pair = await SessionPairAsync();
        await using var doomed = pair.Client.OpenStream();
        await using var doomedAtServer = (await AcceptAfterWriteAsync(pair, doomed))!;
        await using var survivor = pair.Client.OpenStream();
        await using var survivorAtServer = (await AcceptAfterWriteAsync(pair, survivor))!;
        await ReadStringAsync(doomedAtServer, 1);

        doomed.Abort(new ConnectionAbortedException("test"));
        await Assert.ThrowsAsync<ConnectionResetException>(async () => await doomedAtServer.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout));

        await survivor.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("ok"));
        Assert.Equal("xok", await ReadStringAsync(survivorAtServer, 3));
    }

    [Fact]
    public async Task ResetsRacingIncomingData_EndTheirStreamsOnly()
    {
        await using var pair = await SessionPairAsync();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 40; i++)
            {
                Assert.True(pair.Client.Completion.IsCompleted is false, $"the client session ended: {pair.Client.Failure} / server: {pair.Server.Failure}");
                var stream = pair.Client.OpenStream();
                await stream.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("x"));
                var atServer = await AcceptAnyAsync(pair.Server);
                var flooding = FloodAsync(atServer);
                try
                {
                    await stream.Transport.Input.ReadAsync();
                }
                catch (ConnectionResetException)
                {
                    Assert.Fail($"the session ended: client {pair.Client.Failure} / server {pair.Server.Failure}");
                }

                stream.Abort(new ConnectionAbortedException("reset mid-flood"));
                await stream.DisposeAsync();
                await flooding.WaitAsync(Timeout);
                await atServer.DisposeAsync();
            }
        }))).WaitAsync(TimeSpan.FromSeconds(120));

        Assert.False(pair.Client.Completion.IsCompleted, $"the client session ended: {pair.Client.Failure}");
        Assert.False(pair.Server.Completion.IsCompleted, $"the server session ended: {pair.Server.Failure}");
        await using var survivor = pair.Client.OpenStream();
        await using var survivorAtServer = (await AcceptAfterWriteAsync(pair, survivor))!;
        Assert.Equal("x", await ReadStringAsync(survivorAtServer, 1));
    }

    [Fact]
    public async Task StreamsBeyondTheLimit_AreRefusedWithReset()
    {
        await using var pair = await SessionPairAsync(server: new YamuxOptions { MaxStreams = 2 });
        await using var first = pair.Client.OpenStream();
        await using var second = pair.Client.OpenStream();
        await using var third = pair.Client.OpenStream();

        await Assert.ThrowsAsync<ConnectionResetException>(async () => await third.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout));
        await first.Transport.Output.WriteAsync(new byte[] { 1 });
        await using var accepted = (await pair.Server.AcceptStreamAsync().AsTask().WaitAsync(Timeout))!;
        Assert.Equal(1u, accepted.Id);
    }

    [Fact]
    public async Task Ping_MeasuresARoundTrip_AndGoAway_StopsNewStreamsBothWays()
    {
        await using var pair = await SessionPairAsync();
        var rtt = await pair.Client.PingAsync().WaitAsync(Timeout);
        Assert.True(rtt < Timeout);

        await using var open = pair.Client.OpenStream();
        await using var openAtServer = (await AcceptAfterWriteAsync(pair, open))!;
        pair.Server.GoAway();
        await WaitUntilAsync(() => pair.Client.RemoteGoAwayCode == YamuxGoAwayCode.Normal, "the client hears the go-away");
        Assert.Throws<YamuxSessionClosedException>(() => pair.Client.OpenStream());

        // Streams already open go on.
        await open.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("after"));
        Assert.Equal("xafter", await ReadStringAsync(openAtServer, 6));
    }

    [Fact]
    public async Task DisposingAStreamThePeerStillSendsOn_SendsFinWithoutReset_AndGivesTheWindowBack()
    {
        await using var pair = await SessionPairAsync();
        var stream = pair.Client.OpenStream();
        await using var atServer = (await AcceptAfterWriteAsync(pair, stream))!;
        await stream.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("last words"));
        await stream.DisposeAsync();

        // The peer reads all we wrote and our FIN, not a reset, and can still send far past the
        // window into the disposed stream until it closes its side.
        Assert.Equal("xlast words", Encoding.ASCII.GetString(await ReadToEndAsync(atServer)));
        var chunk = new byte[64 * 1024];
        for (var sent = 0; sent < 4 * YamuxOptions.SpecInitialWindow; sent += chunk.Length)
        {
            await atServer.Transport.Output.WriteAsync(chunk).AsTask().WaitAsync(Timeout);
        }

        Assert.Equal(1, pair.Client.StreamCount);
        await atServer.Transport.Output.CompleteAsync();
        await WaitUntilAsync(() => pair.Client.StreamCount == 0 && pair.Server.StreamCount == 0, "both sides forget the stream once the peer closes");
        Assert.True(stream.ConnectionClosed.IsCancellationRequested);
    }

    [Fact]
    public async Task ThePeerGone_EndsTheSession_AndResetsEveryStream()
    {
        var pair = await SessionPairAsync();
        await using var stream = pair.Client.OpenStream();
        await using var atServer = (await AcceptAfterWriteAsync(pair, stream))!;

        await pair.ServerConnection.DisposeAsync();
        await pair.Client.Completion.WaitAsync(Timeout);
        await Assert.ThrowsAsync<ConnectionResetException>(async () => await stream.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeout));
        Assert.Null(await pair.Client.AcceptStreamAsync().AsTask().WaitAsync(Timeout));
        await pair.DisposeAsync();
    }
}
