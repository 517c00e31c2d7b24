using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Forwarder.Transports.Features;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Transports.Tests.Mux;

/// <content>
/// Frames written in place in a socket's receive blocks (FrameBlock), as the L4 pump sends a
/// client's bytes into a link's stream: real client sockets, real TCP connections, real sessions.
/// </content>
public sealed partial class YamuxSessionTests
{
    /// <summary>A link's frames: with its header, a full one is exactly a 64 KiB block.</summary>
    private static readonly YamuxOptions LinkMux = new() { MaxFrameData = 64 * 1024 - 12 };

    [Theory]
    [InlineData(2, 16 * 1024 * 1024)] // 4 streams open: frames written inline, straight from the blocks
    [InlineData(8, 4 * 1024 * 1024)] // 16 open: frames queued, their payloads copied
    public async Task FramedSend_FromSocketsReceiveBlocks_ManyStreamsBothWays_ArriveIntact_AndWithinTheWindow(int perSide, int size)
    {
        await using var sources = await SourcesAsync();
        await using var pair = await SessionPairAsync(LinkMux, LinkMux);
        var framed = new int[1];

        // 64 MiB in all; the first stream the server accepts is not read until its whole window
        // has arrived, which must be all that arrives.
        var fromClient = SendAndReceiveAsync(sources, pair.Client, pair.Server, perSide, size, framed, holdFirst: true);
        var fromServer = SendAndReceiveAsync(sources, pair.Server, pair.Client, perSide, size, framed, holdFirst: false);
        foreach (var (sent, received) in (await Task.WhenAll(fromClient, fromServer).WaitAsync(TimeSpan.FromSeconds(120))).SelectMany(side => side))
        {
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        }

        Assert.True(Volatile.Read(ref framed[0]) > 0, "no read came in a framed block");
    }

    [Fact]
    public async Task FramedSend_AStreamResetMidTransfer_ReturnsEveryReceiveBlockToThePool()
    {
        await using var sources = await SourcesAsync();
        await using var pair = await SessionPairAsync(LinkMux, LinkMux);
        var framed = new int[1];
        var (client, source) = await sources.ConnectAsync();
        using (client)
        {
            await using var stream = pair.Client.OpenStream();
            var pumping = PumpFramedAsync(source, stream, framed);
            var flooding = Task.Run(async () =>
            {
                var chunk = RandomNumberGenerator.GetBytes(256 * 1024);
                try
                {
                    while (true)
                    {
                        await client.SendAsync(chunk);
                    }
                }
                catch (SocketException)
                {
                    // The source connection was closed under it.
                }
            });

            await using var atServer = await AcceptAnyAsync(pair.Server);
            var input = atServer.Transport.Input;
            var read = 0L;
            while (read < 4 * 1024 * 1024)
            {
                var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
                read += result.Buffer.Length;
                input.AdvanceTo(result.Buffer.End);
            }

            atServer.Abort(new ConnectionAbortedException("test: reset mid-transfer"));
            await pumping.WaitAsync(Timeout);
            await source.DisposeAsync();
            client.Close();
            await flooding.WaitAsync(Timeout);
        }

        Assert.True(Volatile.Read(ref framed[0]) > 0, "no read came in a framed block");
        await WaitUntilAsync(() => sources.Pool.Outstanding == 0, $"every receive block is back ({sources.Pool.Outstanding} of {sources.Pool.Rented} out)");
    }

    private static async Task<List<(byte[] Sent, byte[] Received)>> SendAndReceiveAsync(
        Sources sources, YamuxSession from, YamuxSession to, int streams, int size, int[] framed, bool holdFirst)
    {
        var received = Task.Run(async () =>
        {
            var reads = new List<Task<byte[]>>();
            for (var i = 0; i < streams; i++)
            {
                var stream = await AcceptAnyAsync(to);
                var hold = holdFirst && i == 0;
                reads.Add(Task.Run(async () =>
                {
                    await using (stream)
                    {
                        if (hold)
                        {
                            await WholeWindowOnlyAsync(stream);
                        }

                        return await ReadToEndAsync(stream);
                    }
                }));
            }

            return await Task.WhenAll(reads);
        });

        var sent = await Task.WhenAll(Enumerable.Range(0, streams).Select(i => Task.Run(async () =>
        {
            var data = RandomNumberGenerator.GetBytes(size);
            BitConverter.TryWriteBytes(data, i);
            var (client, source) = await sources.ConnectAsync();
            using (client)
            {
                await using var stream = from.OpenStream();
                var pumping = PumpFramedAsync(source, stream, framed);
                for (var offset = 0; offset < data.Length; offset += 100_000)
                {
                    await client.SendAsync(data.AsMemory(offset, Math.Min(100_000, data.Length - offset)));
                }

                client.Shutdown(SocketShutdown.Send);
                await pumping;
                await source.DisposeAsync();
            }

            return data;
        })));

        var byStream = (await received).ToDictionary(data => BitConverter.ToInt32(data));
        Assert.Equal(streams, byStream.Count);
        return sent.Select(data => (data, byStream[BitConverter.ToInt32(data)])).ToList();
    }

    /// <summary>Waits, reading nothing, until the stream's whole initial window has arrived, and checks no byte more did.</summary>
    private static async Task WholeWindowOnlyAsync(YamuxStream stream)
    {
        var input = stream.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            var buffered = result.Buffer.Length;
            Assert.True(buffered <= YamuxOptions.SpecInitialWindow, $"{buffered} bytes arrived with a window of {YamuxOptions.SpecInitialWindow}");
            if (buffered == YamuxOptions.SpecInitialWindow)
            {
                // Nothing examined: the reader after this one reads it all, and frees the window.
                input.AdvanceTo(result.Buffer.Start);
                return;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>The L4 pump's link path: reads capped at the stream's frame, sent straight from the source's receive blocks.</summary>
    private static async Task PumpFramedAsync(ConnectionContext source, YamuxStream target, int[] framed)
    {
        var input = source.Transport.Input;
        var direct = target.Features.Get<IDirectSendFeature>()!;
        source.Features.Get<IReceiveLimitFeature>()!.MaxReceiveSize = direct.ChunkSize;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync();
                if (!result.Buffer.IsEmpty)
                {
                    if (FrameBlock.TryGet(result.Buffer.First, out _, out _))
                    {
                        Interlocked.Increment(ref framed[0]);
                    }

                    await direct.SendAsync(result.Buffer);
                }

                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }

            await target.Transport.Output.CompleteAsync();
        }
        catch (ConnectionResetException)
        {
            // The peer reset the stream: the source is done.
        }
        finally
        {
            await input.CompleteAsync();
        }
    }

    private async Task<Sources> SourcesAsync()
    {
        var pool = new CountingPool(new PinnedBlockMemoryPool(64 * 1024));
        return new Sources(await new TcpListenerFactory(_options, pool).BindAsync(new IPEndPoint(IPAddress.Loopback, 0)), pool);
    }

    /// <summary>Client sockets and the TCP connections they arrive as, receiving into 64 KiB blocks, as a node's listener does.</summary>
    private sealed record Sources(IConnectionListener Listener, CountingPool Pool) : IAsyncDisposable
    {
        private readonly SemaphoreSlim _accepting = new(1);

        public async Task<(Socket Client, ConnectionContext Source)> ConnectAsync()
        {
            // One at a time: concurrent connects would take each other's accepted connection.
            await _accepting.WaitAsync();
            try
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await client.ConnectAsync(Listener.EndPoint);
                return (client, (await Listener.AcceptAsync().AsTask().WaitAsync(Timeout))!);
            }
            finally
            {
                _accepting.Release();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Listener.DisposeAsync();
            _accepting.Dispose();
            Pool.Dispose();
        }
    }

    /// <summary>Counts the blocks rented and given back.</summary>
    private sealed class CountingPool(MemoryPool<byte> inner) : MemoryPool<byte>
    {
        private int _rented;
        private int _returned;

        public int Rented => Volatile.Read(ref _rented);

        public int Outstanding => Rented - Volatile.Read(ref _returned);

        public override int MaxBufferSize => inner.MaxBufferSize;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
        {
            Interlocked.Increment(ref _rented);
            return new Counted(inner.Rent(minBufferSize), this);
        }

        protected override void Dispose(bool disposing) => inner.Dispose();

        private sealed class Counted(IMemoryOwner<byte> block, CountingPool pool) : IMemoryOwner<byte>
        {
            private int _disposed;

            public Memory<byte> Memory => block.Memory;

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0)
                {
                    block.Dispose();
                    Interlocked.Increment(ref pool._returned);
                }
            }
        }
    }
}
