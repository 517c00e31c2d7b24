using Forwarder.Transports.Mux;

namespace Forwarder.Transports.Tests.Mux;

/// <summary>
/// The session's inline writer: the thread that finds the connection free writes, and while its
/// flush is in flight every other frame queues, to go out together in the next flush; each
/// stream's frames stay in order, its SYN first and its FIN last.
/// </summary>
public sealed class YamuxWriterTests
{
    private const int Streams = 40;
    private const int ChunksPerStream = 5;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Write_ConcurrentWritersWhileAFlushIsInFlight_ShareOneFlush()
    {
        await using var peer = new YamuxTestPeer(sessionIsClient: true);
        peer.Output.Close();
        var streams = new List<YamuxStream>();
        await Task.WhenAll(Enumerable.Range(0, Streams).Select(_ => Task.Run(async () =>
        {
            var stream = peer.Session.OpenStream();
            lock (streams)
            {
                streams.Add(stream);
            }

            await stream.Transport.Output.WriteAsync(new byte[100]).AsTask().WaitAsync(Timeout);
        })));

        // The first SYN's flush is held: everything else (39 SYNs, 40 data frames) queued behind it.
        Assert.Equal(1, peer.Output.Flushes);
        peer.Output.Open();
        var frames = await peer.ReadUntilAsync(CountingDataFrames(Streams));
        Assert.Equal(2 * Streams, frames.Count);
        Assert.Equal(2, peer.Output.Flushes);
        foreach (var stream in streams)
        {
            await stream.DisposeAsync();
        }
    }

    [Fact]
    public async Task Write_ManyStreamsAtOnce_KeepEachStreamsFramesInOrder()
    {
        await using var peer = new YamuxTestPeer(sessionIsClient: true);
        var sent = new Dictionary<uint, byte[]>();
        await Task.WhenAll(Enumerable.Range(0, Streams).Select(i => Task.Run(async () =>
        {
            await using var stream = peer.Session.OpenStream();
            var data = new byte[ChunksPerStream * 1000];
            Random.Shared.NextBytes(data);
            lock (sent)
            {
                sent[stream.Id] = data;
            }

            for (var chunk = 0; chunk < ChunksPerStream; chunk++)
            {
                if (chunk == 2)
                {
                    // Sometimes a flush is in flight, sometimes not: frames go out both ways.
                    peer.Output.Close();
                    _ = Task.Run(peer.Output.Open);
                }

                await stream.Transport.Output.WriteAsync(data.AsMemory(chunk * 1000, 1000)).AsTask().WaitAsync(Timeout);
            }
        })));

        var finished = 0;
        var frames = await peer.ReadUntilAsync(frame => (frame.Flags & YamuxFlags.Fin) != 0 && ++finished == Streams);
        foreach (var (id, data) in sent)
        {
            var own = frames.Where(frame => frame.StreamId == id).ToList();
            Assert.True(own[0].Flags == YamuxFlags.Syn, $"stream {id} began with {own[0].Type} {own[0].Flags}, not its SYN");
            Assert.Equal(YamuxFlags.Fin, own[^1].Flags);
            Assert.True(own.Skip(1).SkipLast(1).All(frame => frame.Type == YamuxFrameType.Data), $"stream {id} has frames other than data between its SYN and FIN");
            Assert.Equal(data, own.SelectMany(frame => frame.Payload).ToArray());
        }
    }

    [Fact]
    public async Task Write_ConnectionHeldWithAWideWindow_PushesTheApplicationBack()
    {
        const int Size = 8 * 1024 * 1024;
        await using var peer = new YamuxTestPeer(sessionIsClient: true);
        peer.Output.Close();
        var stream = peer.Session.OpenStream();
        await peer.SendAsync(YamuxTestPeer.Frame(YamuxFrameType.WindowUpdate, YamuxFlags.Ack, stream.Id, Size));
        var data = new byte[Size];
        Random.Shared.NextBytes(data);
        var write = stream.Transport.Output.WriteAsync(data).AsTask();

        // The window would take all of it; the writer's queue takes a megabyte, and the rest waits in the stream's pipe.
        await YamuxSessionTests.WaitUntilAsync(() => peer.Session.StreamsAwaitingRoom == 1, "the stream waits for room in the writer's queue");
        Assert.False(write.IsCompleted, "the application's write completed with the connection held");
        Assert.InRange(peer.Session.QueuedBytes, 1, 2 * 1024 * 1024);

        peer.Output.Open();
        var received = new List<byte>(Size);
        await peer.ReadUntilAsync(frame =>
        {
            received.AddRange(frame.Payload);
            return received.Count == Size;
        });
        await write.WaitAsync(Timeout);
        Assert.Equal(data, received.ToArray());
        await stream.DisposeAsync();
    }

    [Fact]
    public async Task Write_ManyStreamsWaitingForRoom_AllFinishIntact()
    {
        const int Size = 200 * 1024;
        await using var peer = new YamuxTestPeer(sessionIsClient: true);
        peer.Output.Close();
        var sent = new Dictionary<uint, byte[]>();
        var writers = Enumerable.Range(0, Streams).Select(_ => Task.Run(async () =>
        {
            var stream = peer.Session.OpenStream();
            var data = new byte[Size];
            Random.Shared.NextBytes(data);
            lock (sent)
            {
                sent[stream.Id] = data;
            }

            await stream.Transport.Output.WriteAsync(data);
            return stream;
        })).ToList();

        // 8 MB within the streams' windows, the connection held: most streams wait for room.
        await YamuxSessionTests.WaitUntilAsync(() => peer.Session.StreamsAwaitingRoom >= Streams / 2, "streams wait for room in the writer's queue");

        // Each stream that saw room may have queued one frame more: over the megabyte by at most a frame a stream, far from 8 MB.
        Assert.InRange(peer.Session.QueuedBytes, 1, (1024 * 1024) + (Streams * 64 * 1024));
        peer.Output.Open();
        var received = 0L;
        var frames = await peer.ReadUntilAsync(frame => (received += frame.Type == YamuxFrameType.Data ? frame.Payload.Length : 0) == (long)Streams * Size);
        foreach (var (id, data) in sent)
        {
            Assert.Equal(data, frames.Where(frame => frame.StreamId == id).SelectMany(frame => frame.Payload).ToArray());
        }

        foreach (var stream in await Task.WhenAll(writers).WaitAsync(Timeout))
        {
            await stream.DisposeAsync();
        }
    }

    private static Func<WireFrame, bool> CountingDataFrames(int count)
    {
        var seen = 0;
        return frame => frame.Type == YamuxFrameType.Data && ++seen == count;
    }
}
