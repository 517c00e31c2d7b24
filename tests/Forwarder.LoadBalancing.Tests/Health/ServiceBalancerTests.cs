using System.IO.Hashing;
using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing.Tests.Health;

public sealed class ServiceBalancerTests
{
    private static readonly OutlierDetectionOptions Outlier = new(1, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(300), 100);
    private static readonly HealthCheckOptions Checks = new(HealthCheckKind.Tcp, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), 1, 1, TimeSpan.Zero);

    private readonly ManualTimeProvider _time = new();

    private static void Inline(Action work) => work();

    private (ServiceBalancer Balancer, ServiceHealth Health, IReadOnlyList<EndpointHealth> States) Create(
        string policy, int count, int panicThreshold = 50, bool activeChecks = false)
    {
        var endpoints = Enumerable.Range(0, count).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:80", 1)).ToArray();
        var health = new ServiceHealth(_time);
        var states = health.Configure([.. endpoints.Select(e => e.Id)], Outlier);
        var balancer = new ServiceBalancer(policy, endpoints, states, activeChecks, panicThreshold: panicThreshold, random: new Random(7), schedule: Inline);
        health.Subscribe(balancer.Invalidate);
        return (balancer, health, states);
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RoundRobin)]
    [InlineData(LoadBalancingPolicies.Random)]
    [InlineData(LoadBalancingPolicies.LeastRequest)]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public void Pick_EjectedEndpoint_NeverChosenUntilItReturns(string policy)
    {
        var (balancer, health, states) = Create(policy, 4);
        health.ReportFailure(states[2]);

        Assert.Equal(3, balancer.AvailableCount);
        Assert.False(balancer.Takes(2));
        for (var i = 0; i < 10_000; i++)
        {
            Assert.NotEqual(2, balancer.Pick());
            Assert.NotEqual(2, balancer.Pick(XxHash64.HashToUInt64(BitConverter.GetBytes(i))));
        }

        _time.Advance(Outlier.BaseEjectionTime);
        Assert.Equal(4, balancer.AvailableCount);
        Assert.Contains(2, Enumerable.Range(0, 1000).Select(_ => balancer.Pick()));
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public void PickByKey_EndpointOutAndBack_OnlyItsKeysMoveAndTheyComeBack(string policy)
    {
        var (balancer, health, states) = Create(policy, 10);
        var keys = Enumerable.Range(0, 20_000).Select(i => XxHash64.HashToUInt64(BitConverter.GetBytes(i))).ToArray();
        var before = keys.Select(balancer.Pick).ToArray();

        health.ReportFailure(states[3]);
        var during = keys.Select(balancer.Pick).ToArray();
        _time.Advance(Outlier.BaseEjectionTime);
        var after = keys.Select(balancer.Pick).ToArray();

        var strays = Enumerable.Range(0, keys.Length).Count(i => before[i] != 3 && during[i] != before[i]);
        Assert.DoesNotContain(3, during);
        Assert.True(strays <= keys.Length * (policy == LoadBalancingPolicies.Maglev ? 0.02 : 0), $"{strays} keys of healthy endpoints moved");
        Assert.Equal(before, after);
    }

    [Fact]
    public void Pick_TooFewAvailable_PanicsAndUsesAll()
    {
        var (balancer, health, states) = Create(LoadBalancingPolicies.RoundRobin, 4, panicThreshold: 50);
        health.ReportFailure(states[0]);
        Assert.False(balancer.Panic);

        // Two of four available is exactly 50%: still no panic.
        health.ReportFailure(states[1]);
        Assert.False(balancer.Panic);
        Assert.Equal([2, 3], Enumerable.Range(0, 100).Select(_ => balancer.Pick()).Distinct().Order());

        health.ReportFailure(states[2]);
        Assert.True(balancer.Panic);
        Assert.True(balancer.Takes(0));
        Assert.Equal([0, 1, 2, 3], Enumerable.Range(0, 100).Select(_ => balancer.Pick()).Distinct().Order());
    }

    [Fact]
    public void Pick_NoneAvailableAndPanicOff_ReturnsMinusOne()
    {
        var (balancer, health, states) = Create(LoadBalancingPolicies.LeastRequest, 2, panicThreshold: 0, activeChecks: true);

        // Not checked yet: no endpoint has earned traffic.
        Assert.Equal(-1, balancer.Pick());
        health.ReportCheck(states[1], Checks, passed: true, null);
        Assert.Equal(1, balancer.Pick());
        health.ReportCheck(states[0], Checks, passed: true, null);
        health.ReportCheck(states[1], Checks, passed: false, "status 500");
        Assert.Equal(0, balancer.Pick());
    }

    /// <summary>A discovered service with no ready endpoint yet: nothing to pick, and no panic.</summary>
    [Theory]
    [InlineData(LoadBalancingPolicies.RoundRobin)]
    [InlineData(LoadBalancingPolicies.RingHash)]
    public void Pick_NoEndpoints_ReturnsMinusOne(string policy)
    {
        var (balancer, _, _) = Create(policy, 0);

        Assert.Equal(-1, balancer.Pick());
        Assert.Equal(-1, balancer.Pick(12345UL));
        Assert.Equal(-1, balancer.NextUntried(new HashSet<int>(), 0));
        Assert.False(balancer.Panic);
    }

    [Fact]
    public void Invalidate_SameAvailableSet_DoesNotRebuild()
    {
        var (balancer, health, states) = Create(LoadBalancingPolicies.Maglev, 3);
        var rebuilds = balancer.Rebuilds;

        balancer.Invalidate();
        health.ReportFailure(states[0]);
        _time.Advance(Outlier.BaseEjectionTime);
        balancer.Invalidate();

        // Out and back in: two rebuilds, and the full set's table is reused rather than rebuilt.
        Assert.Equal(rebuilds + 2, balancer.Rebuilds);
    }

    [Fact]
    public async Task Invalidate_BurstsFromManyThreads_EndInTheLatestState()
    {
        var endpoints = Enumerable.Range(0, 8).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:80", 1)).ToArray();
        var health = new ServiceHealth(TimeProvider.System);
        var states = health.Configure([.. endpoints.Select(e => e.Id)], outlier: null);
        foreach (var state in states)
        {
            health.ReportCheck(state, Checks, passed: true, null);
        }

        var balancer = new ServiceBalancer(LoadBalancingPolicies.RingHash, endpoints, states, activeChecks: true, panicThreshold: 0);
        health.Subscribe(balancer.Invalidate);

        // Flap every endpoint from four threads while picking; each thread leaves its last two down.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (var round = 0; round < 200; round++)
            {
                health.ReportCheck(states[t * 2], Checks, passed: round % 2 == 1, "flap");
                health.ReportCheck(states[(t * 2) + 1], Checks, passed: round % 2 == 1, "flap");
                Assert.InRange(balancer.Pick(), -1, 7);
            }

            health.ReportCheck(states[(t * 2) + 1], Checks, passed: false, "down");
        })));

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (balancer.AvailableCount != 4 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(4, balancer.AvailableCount);
        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(0, balancer.Pick() % 2);
        }
    }

    [Fact]
    public void Pick_WithSubsetSnapshot_DoesNotAllocate()
    {
        var (balancer, health, states) = Create(LoadBalancingPolicies.RingHash, 16);
        health.ReportFailure(states[5]);
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
