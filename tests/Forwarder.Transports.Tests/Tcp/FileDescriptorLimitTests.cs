using Forwarder.Transports.Tcp;

namespace Forwarder.Transports.Tests.Tcp;

public sealed class FileDescriptorLimitTests
{
    [Theory]
    [InlineData(1024UL, 100, 398)]
    [InlineData(65536UL, 300, 30538)]
    [InlineData(100UL, 200, 1)]
    [InlineData(ulong.MaxValue, 400, 503_316_248)]
    public void Derive_LeavesTheRuntimeWhatItHoldsAndAReserve(ulong soft, int inUse, int expected)
        => Assert.Equal(expected, FileDescriptorLimit.Derive(soft, inUse));

    [Fact]
    public void Soft_AfterRaise_IsTheHardLimit()
    {
        FileDescriptorLimit.Raise();

        Assert.Equal(FileDescriptorLimit.Hard, FileDescriptorLimit.Soft);
        Assert.InRange(FileDescriptorLimit.DeriveMaxConnections(), 1, int.MaxValue);
    }
}
