using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

public sealed class SettlePolicyTests
{
    private const long KiB = 1024;
    private const long Frequency = 1000;
    private readonly SettlePolicy _policy = new(minWorkBytes: 128 * KiB, maxQuietBytes: 64 * KiB, minInterval: TimeSpan.FromSeconds(30));

    public SettlePolicyTests() => _policy.Begin(8000 * KiB);

    [Fact]
    public void IdleAfterStart_NeverSettles()
    {
        Assert.False(_policy.ShouldSettle(8010 * KiB, 0, 5000, Frequency));
        Assert.False(_policy.ShouldSettle(8020 * KiB, 0, 10_000, Frequency));
        Assert.False(_policy.ShouldSettle(8050 * KiB, 0, 60_000, Frequency));
    }

    [Fact]
    public void WorkThenQuiet_SettlesOnce()
    {
        Assert.False(_policy.ShouldSettle(8300 * KiB, 0, 5000, Frequency));
        Assert.True(_policy.ShouldSettle(8310 * KiB, 0, 10_000, Frequency));
        _policy.Released(8310 * KiB, 10_000, settled: true);

        Assert.False(_policy.ShouldSettle(8320 * KiB, 0, 15_000, Frequency));
        Assert.False(_policy.ShouldSettle(8330 * KiB, 0, 60_000, Frequency));
    }

    [Fact]
    public void BulkFlowAllocatingNothing_DoesNotSettleUntilItStops()
    {
        Assert.False(_policy.ShouldSettle(8300 * KiB, 0, 5000, Frequency));
        Assert.False(_policy.ShouldSettle(8310 * KiB, 1_000_000_000, 10_000, Frequency));
        Assert.False(_policy.ShouldSettle(8320 * KiB, 2_000_000_000, 45_000, Frequency));

        Assert.True(_policy.ShouldSettle(8330 * KiB, 2_000_000_000, 50_000, Frequency));
    }

    [Fact]
    public void WorkGoingOn_DoesNotSettle()
    {
        Assert.False(_policy.ShouldSettle(9000 * KiB, 0, 5000, Frequency));
        Assert.False(_policy.ShouldSettle(10_000 * KiB, 0, 10_000, Frequency));
        Assert.False(_policy.ShouldSettle(11_000 * KiB, 0, 15_000, Frequency));
    }

    [Fact]
    public void WorkAgainSoonAfterASettle_WaitsForTheInterval()
    {
        _policy.ShouldSettle(8300 * KiB, 0, 5000, Frequency);
        Assert.True(_policy.ShouldSettle(8300 * KiB, 0, 10_000, Frequency));
        _policy.Released(8300 * KiB, 10_000, settled: true);

        Assert.False(_policy.ShouldSettle(8600 * KiB, 0, 15_000, Frequency));
        Assert.False(_policy.ShouldSettle(8600 * KiB, 0, 20_000, Frequency));
        Assert.True(_policy.ShouldSettle(8600 * KiB, 0, 40_000, Frequency));
    }
}
