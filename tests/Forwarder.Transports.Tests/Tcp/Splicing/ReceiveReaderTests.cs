using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Transports.Tests.Tcp.Splicing;

public sealed class ReceiveReaderTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ReadAsync_WaitsForACommit_ThenReturnsTheBytes()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });

        var read = reader.ReadAsync();
        Assert.False(read.IsCompleted);
        Receive(reader, "hello");

        var result = await read.AsTask().WaitAsync(Deadline);
        Assert.Equal("hello", Text(result.Buffer));
        Assert.False(result.IsCompleted);
        reader.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task AdvanceTo_ExaminedToTheEnd_NextReadWaitsForMore_ThenReturnsAll()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        Receive(reader, "GET / HT");

        var first = await reader.ReadAsync();
        reader.AdvanceTo(first.Buffer.Start, first.Buffer.End);
        var second = reader.ReadAsync();
        Assert.False(second.IsCompleted);
        Receive(reader, "TP/1.1");

        var result = await second.AsTask().WaitAsync(Deadline);
        Assert.Equal("GET / HTTP/1.1", Text(result.Buffer));
        reader.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task AdvanceTo_PartlyConsumed_NextReadReturnsTheRestAtOnce()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        Receive(reader, "onetwo");

        var first = await reader.ReadAsync();
        reader.AdvanceTo(first.Buffer.GetPosition(3));
        var second = reader.ReadAsync();

        Assert.True(second.IsCompleted);
        Assert.Equal("two", Text((await second).Buffer));
    }

    [Fact]
    public async Task Commits_AcrossBlocks_ReadAsOneSequenceInOrder()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        var sent = new StringBuilder();
        for (var i = 0; i < 40; i++)
        {
            var chunk = new string((char)('a' + (i % 26)), 37);
            Receive(reader, chunk);
            sent.Append(chunk);
        }

        var result = await reader.ReadAsync();

        Assert.False(result.Buffer.IsSingleSegment);
        Assert.Equal(sent.ToString(), Text(result.Buffer));
        reader.AdvanceTo(result.Buffer.End);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public async Task EverythingConsumed_AllBlocksGoBackToThePool()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        Receive(reader, new string('x', 1500));

        var result = await reader.ReadAsync();
        Assert.True(pool.Outstanding >= 3);
        reader.AdvanceTo(result.Buffer.GetPosition(1000));
        Assert.True(pool.Outstanding >= 1, "the unconsumed bytes keep their block");
        var rest = await reader.ReadAsync();
        Assert.Equal(500, rest.Buffer.Length);
        reader.AdvanceTo(rest.Buffer.End);

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public async Task CancelPendingRead_EndsTheWaitingRead_AsCanceled_AndReadingGoesOn()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        var read = reader.ReadAsync();

        reader.CancelPendingRead();
        var canceled = await read.AsTask().WaitAsync(Deadline);
        Assert.True(canceled.IsCanceled);
        reader.AdvanceTo(canceled.Buffer.Start, canceled.Buffer.End);
        var next = reader.ReadAsync();
        Assert.False(next.IsCompleted);
        Receive(reader, "after");

        Assert.Equal("after", Text((await next.AsTask().WaitAsync(Deadline)).Buffer));
    }

    [Fact]
    public async Task CancelPendingRead_WithNoReadWaiting_CancelsTheNextRead()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        Receive(reader, "data");

        reader.CancelPendingRead();
        var result = await reader.ReadAsync();

        Assert.True(result.IsCanceled);
        Assert.Equal("data", Text(result.Buffer));
    }

    [Fact]
    public async Task ReadAsync_TokenCanceled_ThrowsOperationCanceled()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        using var cancel = new CancellationTokenSource();
        var read = reader.ReadAsync(cancel.Token);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.AsTask().WaitAsync(Deadline));
    }

    [Fact]
    public async Task CompleteWriter_ResultIsCompleted_AfterTheLastBytes()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        var read = reader.ReadAsync();
        Receive(reader, "last");
        var data = await read.AsTask().WaitAsync(Deadline);
        reader.AdvanceTo(data.Buffer.Start, data.Buffer.End);

        reader.CompleteWriter(null);
        var end = await reader.ReadAsync();

        Assert.True(end.IsCompleted);
        Assert.Equal("last", Text(end.Buffer));
    }

    [Fact]
    public async Task CompleteWriter_WithError_ReadThrowsIt()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        var read = reader.ReadAsync();

        reader.CompleteWriter(new IOException("reset"));

        var error = await Assert.ThrowsAsync<IOException>(() => read.AsTask().WaitAsync(Deadline));
        Assert.Equal("reset", error.Message);
    }

    [Fact]
    public async Task Commit_OverThePauseThreshold_Pauses_AndConsumingBelowHalfResumes()
    {
        using var pool = new CountingPool(512);
        var resumed = 0;
        var reader = new ReceiveReader(pool, 1000, () => resumed++);

        Assert.Equal(ReceiveReader.CommitResult.Continue, Receive(reader, new string('a', 600)));
        Assert.Equal(ReceiveReader.CommitResult.Pause, Receive(reader, new string('b', 600)));
        var result = await reader.ReadAsync();
        reader.AdvanceTo(result.Buffer.GetPosition(400));
        Assert.Equal(0, resumed);
        var rest = await reader.ReadAsync();
        reader.AdvanceTo(rest.Buffer.GetPosition(400));

        Assert.Equal(1, resumed);
    }

    [Fact]
    public async Task ReaderCompleted_CommitSaysSo_AndBlocksGoBackOnceTheWriterIsDone()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        Receive(reader, "unread");
        var result = await reader.ReadAsync();
        reader.AdvanceTo(result.Buffer.Start);

        await reader.CompleteAsync();
        Assert.Equal(ReceiveReader.CommitResult.ReaderCompleted, Receive(reader, "more"));
        Assert.True(pool.Outstanding > 0, "the producer may still hold memory until it completes");
        reader.CompleteWriter(null);

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public async Task ReadAsync_WhileAReadIsInProgress_Throws()
    {
        using var pool = new CountingPool(512);
        var reader = new ReceiveReader(pool, 1 << 20, () => { });
        Receive(reader, "x");
        await reader.ReadAsync();

        Assert.Throws<InvalidOperationException>(() => reader.ReadAsync());
    }

    [Fact]
    public async Task ProducerAndReaderOnDifferentThreads_EveryByteArrivesInOrder()
    {
        using var pool = new CountingPool(512);
        using var resumed = new SemaphoreSlim(0);
        var reader = new ReceiveReader(pool, 4096, () => resumed.Release());
        const int Total = 2_000_000;
        var producer = Task.Run(() =>
        {
            var next = 0;
            var random = new Random(7);
            while (next < Total)
            {
                var memory = reader.GetReceiveMemory(256);
                var count = Math.Min(Math.Min(memory.Length, random.Next(1, 700)), Total - next);
                for (var i = 0; i < count; i++)
                {
                    memory.Span[i] = (byte)((next + i) % 251);
                }

                next += count;
                if (reader.Commit(count) == ReceiveReader.CommitResult.Pause && !resumed.Wait(Deadline))
                {
                    throw new TimeoutException("the reader never let the producer resume");
                }
            }

            reader.CompleteWriter(null);
        });

        long seen = 0;
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().WaitAsync(Deadline);
            foreach (var segment in result.Buffer)
            {
                foreach (var b in segment.Span)
                {
                    Assert.Equal((byte)(seen % 251), b);
                    seen++;
                }
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await producer.WaitAsync(Deadline);
        Assert.Equal(Total, seen);
    }

    private static ReceiveReader.CommitResult Receive(ReceiveReader reader, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var result = ReceiveReader.CommitResult.Continue;
        for (var offset = 0; offset < bytes.Length;)
        {
            var memory = reader.GetReceiveMemory(1);
            var count = Math.Min(memory.Length, bytes.Length - offset);
            bytes.AsSpan(offset, count).CopyTo(memory.Span);
            offset += count;
            result = reader.Commit(count);
        }

        return result;
    }

    private static string Text(ReadOnlySequence<byte> buffer) => Encoding.ASCII.GetString(buffer.ToArray());

    /// <summary>Small blocks, and a count of those rented and not yet returned.</summary>
    private sealed class CountingPool(int blockSize) : MemoryPool<byte>
    {
        private int _outstanding;

        public int Outstanding => Volatile.Read(ref _outstanding);

        public override int MaxBufferSize => blockSize;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
        {
            Interlocked.Increment(ref _outstanding);
            return new Block(this, blockSize);
        }

        protected override void Dispose(bool disposing)
        {
        }

        private sealed class Block(CountingPool pool, int size) : IMemoryOwner<byte>
        {
            private int _disposed;

            public Memory<byte> Memory { get; } = new byte[size];

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0)
                {
                    Interlocked.Decrement(ref pool._outstanding);
                }
            }
        }
    }
}
