using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

public sealed class MemoryReclaimPolicyTests
{
    private const long MiB = 1024 * 1024;
    private const long Frequency = 1000;
    private readonly MemoryReclaimPolicy _policy = new(minGrowthBytes: 16 * MiB, minInterval: TimeSpan.FromSeconds(20));

    public MemoryReclaimPolicyTests() => _policy.Begin(60 * MiB);

    [Fact]
    public void GrowthThenConnectionsGone_Reclaims()
    {
        Assert.False(_policy.ShouldReclaim(9500, 150 * MiB, 0, 1000, Frequency));
        Assert.True(_policy.ShouldReclaim(0, 150 * MiB, 0, 6000, Frequency));
    }

    [Fact]
    public void ConnectionsStillOpen_DoesNotReclaim()
    {
        Assert.False(_policy.ShouldReclaim(9500, 150 * MiB, 0, 1000, Frequency));
        Assert.False(_policy.ShouldReclaim(5000, 150 * MiB, 0, 6000, Frequency));
        Assert.True(_policy.ShouldReclaim(4750, 150 * MiB, 0, 11000, Frequency));
    }

    [Fact]
    public void SmallGrowth_DoesNotReclaim()
    {
        Assert.False(_policy.ShouldReclaim(100, 70 * MiB, 0, 1000, Frequency));
        Assert.False(_policy.ShouldReclaim(0, 70 * MiB, 0, 6000, Frequency));
    }

    [Fact]
    public void AfterAReclaim_NeedsNewGrowthAndTheInterval()
    {
        _policy.ShouldReclaim(9500, 150 * MiB, 0, 1000, Frequency);
        Assert.True(_policy.ShouldReclaim(0, 150 * MiB, 0, 6000, Frequency));
        _policy.Reclaimed(0, 65 * MiB, 6000);

        // What a reclaim could not give back is the new baseline: no reclaim for it again.
        Assert.False(_policy.ShouldReclaim(0, 65 * MiB, 0, 6500, Frequency));

        // A new peak that is gone again, but too soon after the last reclaim; then once the interval passed.
        Assert.False(_policy.ShouldReclaim(9500, 150 * MiB, 0, 7000, Frequency));
        Assert.False(_policy.ShouldReclaim(0, 150 * MiB, 0, 12_000, Frequency));
        Assert.True(_policy.ShouldReclaim(0, 150 * MiB, 0, 26_000, Frequency));
    }

    [Fact]
    public void BlocksLetGoAfterAReclaim_ReclaimAgainOnceTheyAddUp()
    {
        _policy.ShouldReclaim(100, 150 * MiB, 0, 1000, Frequency);
        Assert.True(_policy.ShouldReclaim(0, 150 * MiB, 0, 6000, Frequency));
        _policy.Reclaimed(0, 140 * MiB, 6000);

        // The blocks in flight at that reclaim come back to the pools and go idle: no growth shows
        // (the heap's figure is as of the last collection), but they need a collection to be freed.
        Assert.False(_policy.ShouldReclaim(0, 140 * MiB, 10 * MiB, 11_000, Frequency));
        Assert.False(_policy.ShouldReclaim(0, 140 * MiB, 80 * MiB, 16_000, Frequency));
        Assert.True(_policy.ShouldReclaim(0, 140 * MiB, 0, 26_000, Frequency));
        _policy.Reclaimed(0, 60 * MiB, 26_000);

        Assert.False(_policy.ShouldReclaim(0, 60 * MiB, 1 * MiB, 40_000, Frequency));
    }
}
