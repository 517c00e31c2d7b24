using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Transports.Tests.Tcp.Splicing;

public sealed class BlockStackTests
{
    [Fact]
    public void TrimIdle_LetsGoOnlyOfBlocksNoRentReachedSinceTheLastCall()
    {
        var stack = new BlockStack(1024);
        var burst = Enumerable.Range(0, 30).Select(_ => stack.Rent()).ToList();
        burst.ForEach(stack.Return);

        // Back within this interval: not idle for a whole one yet.
        Assert.Equal(0, stack.TrimIdle());

        // Steady traffic takes 5 at a time: the other 25 sat idle all through the next interval.
        var steady = Enumerable.Range(0, 5).Select(_ => stack.Rent()).ToList();
        steady.ForEach(stack.Return);
        Assert.Equal(25, stack.TrimIdle());
        Assert.Equal(5, stack.Idle);

        Assert.Equal(5, stack.TrimIdle());
        Assert.Equal(0, stack.Idle);
    }
}
