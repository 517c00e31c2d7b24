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
    public void Rent_LargerThanBlock_Throws()
    {
        using var pool = new PinnedBlockMemoryPool(4096);

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(4097));
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
}
