using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

public sealed class TypeInitFaultsTests
{
    [Fact]
    public void Observe_OrdinaryFailure_LeavesNothingBroken()
    {
        var faults = new TypeInitFaults();

        Assert.False(faults.Observe(new IOException("Connection reset", new InvalidOperationException())));
        Assert.Null(faults.Broken);
    }

    [Fact]
    public void Observe_TypeInitializationInsideAggregate_KeepsTheFirstTypeFound()
    {
        var faults = new TypeInitFaults();

        Assert.True(faults.Observe(new AggregateException(new IOException(), new TypeInitializationException("First", null))));
        Assert.True(faults.Observe(new TypeInitializationException("Second", null)));
        Assert.Equal("First", faults.Broken);
    }
}
