using Forwarder.Transports.Memory;

namespace Forwarder.Transports.Tests.Memory;

public sealed class PinnedBlockMemoryPoolTests
{
    [Fact]
    public void Rent_ReturnsBlockOfPoolSize_ReusedAfterDispose()
    {
        using var pool = new PinnedBlockMemoryPool(4096);

        var first = pool.Rent(100);
        var memory = first.Memory;
        first.Dispose();
        using var second = pool.Rent();

        Assert.Equal(4096, memory.Length);
        Assert.True(memory.Span == second.Memory.Span, "the returned block is handed out again");
    }

    [Fact]
    public void Trim_LetsTheSharedQueuesIdleBlocksGo()
    {
        using var pool = new PinnedBlockMemoryPool(4096);

        // More than a thread keeps for itself (16): the rest wait in the shared queue. A thread of
        // its own, as blocks of other pools the test thread kept would change how many it keeps.
        var thread = new Thread(() => Enumerable.Range(0, 40).Select(_ => pool.Rent()).ToList().ForEach(b => b.Dispose()));
        thread.Start();
        thread.Join();

        var released = pool.Trim();

        Assert.Equal(24, released);
        Assert.Equal(0, pool.Trim());
    }

    [Fact]
    public void TrimIdle_LetsGoOnlyOfBlocksNoRentReachedSinceTheLastCall()
    {
        using var pool = new PinnedBlockMemoryPool(4096);

        // 40 blocks through a thread of its own: 24 end in the shared queue (as above).
        void OnItsOwnThread(Action action)
        {
            var thread = new Thread(() => action());
            thread.Start();
            thread.Join();
        }

        void Cycle(int count) => OnItsOwnThread(() => Enumerable.Range(0, count).Select(_ => pool.Rent()).ToList().ForEach(b => b.Dispose()));

        Cycle(40);

        // The queue filled since the last call: none of it has been idle a whole interval yet.
        Assert.Equal(0, pool.TrimIdle());

        // 10 taken from the queue in the next interval (and kept by their thread): 14 sat idle all along.
        Cycle(10);
        Assert.Equal(14, pool.TrimIdle());

        // Blocks that come back in an interval stay until a whole interval passes without a rent.
        Cycle(40);
        Assert.Equal(0, pool.TrimIdle());
        Assert.Equal(24, pool.TrimIdle());
        Assert.Equal(0, pool.Trim());
    }

    [Fact]
    public void Trim_ReturnsTheIdleBlocksPagesToTheSystem_RentReadsZeros()
    {
        using var pool = new PinnedBlockMemoryPool(4096);
        OnItsOwnThread(() =>
        {
            var blocks = Enumerable.Range(0, 40).Select(_ => pool.Rent()).ToList();
            blocks.ForEach(b => b.Memory.Span.Fill(0xAB));
            blocks.ForEach(b => b.Dispose());
        });

        Assert.Equal(24, pool.Trim());

        // The next rents find no warm block and take the cold ones: what was written is gone with
        // the pages (MADV_DONTNEED), which a block merely kept in the pool would still hold.
        var zeros = 0;
        OnItsOwnThread(() =>
        {
            var blocks = Enumerable.Range(0, 24).Select(_ => pool.Rent()).ToList();
            zeros = blocks.Count(b => !b.Memory.Span.ContainsAnyExcept((byte)0));
            blocks.ForEach(b => b.Dispose());
        });

        Assert.Equal(24, zeros);
        Assert.Equal(1, pool.Slabs);
    }

    [Fact]
    public void Trim_SlabWhoseBlocksAllWentCold_IsLetGo()
    {
        using var pool = new PinnedBlockMemoryPool(4096);

        // 1 MiB slabs of 256 blocks: 300 blocks take two. Returned in rent order, the first 16 stay
        // with their thread; the second slab's 44 all go to the shared queue.
        OnItsOwnThread(() =>
        {
            var blocks = Enumerable.Range(0, 300).Select(_ => pool.Rent()).ToList();
            Assert.Equal(2, pool.Slabs);
            blocks.ForEach(b => b.Dispose());
        });

        Assert.Equal(284, pool.Trim());
        Assert.Equal(1, pool.Slabs);

        // The 16 the ended thread kept come back to the shared queue once its statics are
        // collected; trimmed, the first slab goes too.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (pool.Slabs > 0 && DateTime.UtcNow < deadline)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            pool.Trim();
        }

        Assert.Equal(0, pool.Slabs);
        using var again = pool.Rent();
        Assert.Equal(1, pool.Slabs);
    }

    [Fact]
    public void Rent_LargerThanBlock_Throws()
    {
        using var pool = new PinnedBlockMemoryPool(4096);

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(4097));
    }

    [Fact]
    public unsafe void Rent_BlockOfPageMultipleSize_StartsOnAPageBoundary()
    {
        using var pool = new PinnedBlockMemoryPool(16384);
        using var block = pool.Rent();

        using var handle = block.Memory.Pin();
        Assert.Equal(0, (long)handle.Pointer % Environment.SystemPageSize);
    }

    [Fact]
    public unsafe void Pin_ReturnsStableAddressOfBlock()
    {
        using var pool = new PinnedBlockMemoryPool(4096);
        using var block = pool.Rent();

        using var handle = block.Memory.Pin();
        fixed (byte* expected = block.Memory.Span)
        {
            Assert.True(handle.Pointer == expected);
        }
    }

    private static void OnItsOwnThread(Action action)
    {
        var thread = new Thread(() => action());
        thread.Start();
        thread.Join();
    }
}
