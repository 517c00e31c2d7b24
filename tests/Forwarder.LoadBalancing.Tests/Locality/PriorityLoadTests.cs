using Forwarder.LoadBalancing.Locality;

namespace Forwarder.LoadBalancing.Tests.Locality;

public sealed class PriorityLoadTests
{
    private static (int[] Load, bool[] Panic) Compute(int[] sizes, int[] available, int factor = 140, int panicThreshold = 50)
    {
        var load = new int[sizes.Length];
        var panic = new bool[sizes.Length];
        PriorityLoad.Compute(sizes, available, factor, panicThreshold, load, panic);
        return (load, panic);
    }

    /// <summary>The two-level table of Envoy's "priority levels" page (P=1 fully healthy).</summary>
    [Theory]
    [InlineData(100, 100, 0)]
    [InlineData(72, 100, 0)]
    [InlineData(71, 99, 1)]
    [InlineData(50, 70, 30)]
    [InlineData(25, 35, 65)]
    [InlineData(0, 0, 100)]
    public void Compute_TwoLevels_MatchesEnvoyTable(int healthyPercent, int toP0, int toP1)
    {
        var (load, panic) = Compute([100, 100], [healthyPercent, 100]);

        Assert.Equal([toP0, toP1], load);
        Assert.Equal([false, false], panic);
    }

    /// <summary>Envoy's three-level rows: traffic cascades P0 -> P1 -> P2 as each level's health runs out.</summary>
    [Theory]
    [InlineData(100, 100, 100, 100, 0, 0)]
    [InlineData(72, 72, 100, 100, 0, 0)]
    [InlineData(71, 71, 100, 99, 1, 0)]
    [InlineData(50, 50, 100, 70, 30, 0)]
    [InlineData(25, 100, 100, 35, 65, 0)]
    [InlineData(25, 25, 100, 35, 35, 30)]
    public void Compute_ThreeLevels_SpillsInOrder(int h0, int h1, int h2, int l0, int l1, int l2)
    {
        var (load, _) = Compute([100, 100, 100], [h0, h1, h2]);

        Assert.Equal([l0, l1, l2], load);
    }

    [Fact]
    public void Compute_TotalHealthBelow100_ScalesLoadsUpToFill()
    {
        // Health 35 and 35 (of 70): each level gets half rather than 30% going nowhere.
        var (load, panic) = Compute([100, 100], [25, 25], panicThreshold: 0);

        Assert.Equal([50, 50], load);
        Assert.Equal([false, false], panic);
    }

    [Fact]
    public void Compute_OneLevelShortWhileTotalBelow100_OnlyThatLevelPanics()
    {
        // Health 14 and 70, total 84: P0 has 10% < 30% available and panics; P1 has 50% and does not.
        var (load, panic) = Compute([10, 10], [1, 5], panicThreshold: 30);

        Assert.Equal([17, 83], load);
        Assert.Equal([true, false], panic);
    }

    [Fact]
    public void Compute_TotalHealthy_NoLevelPanicsEvenIfShort()
    {
        var (load, panic) = Compute([10, 10], [1, 10]);

        Assert.Equal([14, 86], load);
        Assert.Equal([false, false], panic);
    }

    [Fact]
    public void Compute_EveryLevelInPanic_SpreadsBySize()
    {
        var (load, panic) = Compute([2, 6, 0], [0, 1, 0]);

        Assert.Equal([25, 75, 0], load);
        Assert.Equal([true, true, false], panic);
    }

    [Fact]
    public void Compute_NothingAvailableAndPanicOff_NoLoad()
    {
        var (load, _) = Compute([3, 3], [0, 0], panicThreshold: 0);

        Assert.Equal([0, 0], load);
    }

    [Fact]
    public void Compute_EmptyLevels_AreSkipped()
    {
        // No endpoint on this node: the zone level takes everything.
        var (load, _) = Compute([0, 2, 3], [0, 2, 3]);

        Assert.Equal([0, 100, 0], load);
    }

    [Fact]
    public void Compute_FactorOf100_SpillsAtTheFirstLoss()
    {
        var (load, _) = Compute([4, 4], [3, 4], factor: 100);

        Assert.Equal([75, 25], load);
    }
}
