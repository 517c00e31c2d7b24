using System.IO.Hashing;
using Forwarder.LoadBalancing.Health;
using Forwarder.LoadBalancing.Locality;
using Forwarder.LoadBalancing.Tests.Health;

namespace Forwarder.LoadBalancing.Tests.Locality;

public sealed class LocalityBalancerTests
{
    private const int Picks = 20_000;

    private static readonly OutlierDetectionOptions Outlier = new(1, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(300), 100);

    /// <summary>Two endpoints on this node, two more in this zone, two elsewhere.</summary>
    private static readonly int[] NodeZoneRest = [0, 0, 1, 1, 2, 2];

    private readonly ManualTimeProvider _time = new();

    private static void Inline(Action work) => work();

    private static int[] LevelShares(ServiceBalancer balancer, Func<int, int> pick)
    {
        var counts = new int[balancer.LevelCount];
        for (var i = 0; i < Picks; i++)
        {
            counts[balancer.LevelOf(pick(i))]++;
        }

        return counts;
    }

    private static ulong Key(int i) => XxHash64.HashToUInt64(BitConverter.GetBytes(i));

    private (ServiceBalancer Balancer, ServiceHealth Health, EndpointHealth[] States, LevelPicks Counters) Create(string policy, int[] levels, int factor = 140, int panicThreshold = 50)
    {
        var endpoints = levels.Select((_, i) => new LoadBalancerEndpoint($"10.0.{levels[i]}.{i}:80", 1)).ToArray();
        var health = new ServiceHealth(_time);
        var states = health.Configure([.. endpoints.Select(e => e.Id)], Outlier);
        var counters = new LevelPicks();
        var balancer = new ServiceBalancer(policy, endpoints, states, activeChecks: false, panicThreshold: panicThreshold, random: new Random(11), schedule: Inline, locality: new LocalityOptions(levels, factor, counters));
        health.Subscribe(balancer.Invalidate);
        return (balancer, health, states, counters);
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RoundRobin)]
    [InlineData(LoadBalancingPolicies.Random)]
    [InlineData(LoadBalancingPolicies.LeastRequest)]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public void Pick_AllHealthy_StaysOnThisNode(string policy)
    {
        var (balancer, _, _, counters) = Create(policy, NodeZoneRest);

        Assert.Equal([Picks, 0, 0], LevelShares(balancer, _ => balancer.Pick()));
        Assert.Equal([Picks, 0, 0], LevelShares(balancer, i => balancer.Pick(Key(i))));
        Assert.Equal(2 * Picks, counters[0]);
        Assert.Equal(0, counters[1]);

        // Both local endpoints take their share, not just one.
        Assert.Equal([0, 1], Enumerable.Range(0, 200).Select(_ => balancer.Pick()).Distinct().Order());
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RoundRobin)]
    [InlineData(LoadBalancingPolicies.Random)]
    [InlineData(LoadBalancingPolicies.LeastRequest)]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public void Pick_HalfOfNodeDown_SpillsThirtyPercentToZone(string policy)
    {
        var (balancer, health, states, counters) = Create(policy, NodeZoneRest);
        health.ReportFailure(states[0]);

        // 50% healthy x 1.4 = 70% stays on the node (its one healthy endpoint), 30% goes to the zone.
        foreach (var shares in new[] { LevelShares(balancer, _ => balancer.Pick()), LevelShares(balancer, i => balancer.Pick(Key(i))) })
        {
            Assert.InRange(shares[0], Picks * 0.67, Picks * 0.73);
            Assert.Equal(Picks - shares[0], shares[1]);
        }

        Assert.Equal(2 * Picks, counters[0] + counters[1]);
        Assert.Equal(0, counters[2]);
        Assert.DoesNotContain(0, Enumerable.Range(0, 2000).Select(i => balancer.Pick(Key(i))));
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RoundRobin)]
    [InlineData(LoadBalancingPolicies.RingHash)]
    public void Pick_NodeThenZoneDown_FailsOverInOrderAndBack(string policy)
    {
        var (balancer, health, states, _) = Create(policy, NodeZoneRest);
        health.ReportFailure(states[0]);
        health.ReportFailure(states[1]);
        Assert.Equal([0, Picks, 0], LevelShares(balancer, _ => balancer.Pick()));
        Assert.False(balancer.Panic);

        health.ReportFailure(states[2]);
        health.ReportFailure(states[3]);
        Assert.Equal([0, 0, Picks], LevelShares(balancer, i => balancer.Pick(Key(i))));

        _time.Advance(Outlier.BaseEjectionTime);
        Assert.Equal([Picks, 0, 0], LevelShares(balancer, _ => balancer.Pick()));
    }

    [Fact]
    public void PickByKey_ZoneChanges_KeysOnThisNodeStay()
    {
        var (balancer, health, states, _) = Create(LoadBalancingPolicies.Maglev, [0, 0, 0, 1, 1, 1]);
        health.ReportFailure(states[0]);
        var keys = Enumerable.Range(0, 10_000).Select(Key).ToArray();
        var before = keys.Select(balancer.Pick).ToArray();

        // Another zone endpoint leaves: node health is unchanged (2 of 3 x 1.4 = 93%), so node keys keep their endpoint.
        health.ReportFailure(states[4]);
        var after = keys.Select(balancer.Pick).ToArray();

        var nodeKeys = Enumerable.Range(0, keys.Length).Where(i => before[i] < 3).ToArray();
        Assert.InRange(nodeKeys.Length, keys.Length * 0.90, keys.Length * 0.96);
        Assert.All(nodeKeys, i => Assert.Equal(before[i], after[i]));
    }

    [Fact]
    public void Pick_LevelShortWhileOthersCarry_PanicsOnlyThere()
    {
        // Node 1 of 10 up (health 14), zone 5 of 10 (health 70): total 84 < 100, and with a
        // threshold of 30 the node level panics: its 17% goes to all ten of its endpoints.
        int[] levels = [.. Enumerable.Repeat(0, 10), .. Enumerable.Repeat(1, 10)];
        var (balancer, health, states, _) = Create(LoadBalancingPolicies.RoundRobin, levels, panicThreshold: 30);
        for (var i = 1; i < 15; i++)
        {
            health.ReportFailure(states[i]);
        }

        var picks = Enumerable.Range(0, Picks).Select(_ => balancer.Pick()).ToArray();
        Assert.True(balancer.Panic);
        Assert.True(balancer.Takes(3));
        Assert.False(balancer.Takes(12));
        Assert.Equal(Enumerable.Range(0, 10).Concat(Enumerable.Range(15, 5)), picks.Distinct().Order());
        Assert.InRange(picks.Count(p => p < 10), Picks * 0.14, Picks * 0.20);
    }

    [Fact]
    public void Pick_OnlyOtherZonesHaveEndpoints_UsesThem()
    {
        var (balancer, _, _, counters) = Create(LoadBalancingPolicies.LeastRequest, [2, 2, 2]);

        Assert.Equal(3, Enumerable.Range(0, 300).Select(_ => balancer.Pick()).Distinct().Count());
        Assert.Equal(300, counters[2]);
    }

    [Fact]
    public void NextUntried_PrefersTheNearestLevel()
    {
        var (balancer, _, _, _) = Create(LoadBalancingPolicies.RoundRobin, [0, 2, 1, 0, 1]);

        Assert.Equal(3, balancer.NextUntried(new HashSet<int> { 0 }, 0));
        Assert.Equal(4, balancer.NextUntried(new HashSet<int> { 0, 3 }, 3));
        Assert.Equal(1, balancer.NextUntried(new HashSet<int> { 0, 2, 3, 4 }, 4));
    }

    [Fact]
    public void Pick_WithLevels_DoesNotAllocate()
    {
        var (balancer, health, states, _) = Create(LoadBalancingPolicies.RingHash, NodeZoneRest);
        health.ReportFailure(states[1]);
        balancer.Pick(1);
        balancer.Pick();

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            balancer.Pick((ulong)i * 0x9E3779B97F4A7C15);
            balancer.Pick();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
