using System.IO.Hashing;
using Forwarder.LoadBalancing;
using Xunit.Abstractions;

namespace Forwarder.LoadBalancing.Tests.Policies;

public sealed class ConsistentHashTests(ITestOutputHelper output)
{
    private const int Keys = 100_000;

    private static LoadBalancerEndpoint[] Endpoints(int count, Func<int, int>? weight = null)
        => Enumerable.Range(0, count).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:8080", weight?.Invoke(i) ?? 1)).ToArray();

    private static ulong Key(int i) => XxHash64.HashToUInt64(BitConverter.GetBytes(i));

    private static string[] Assign(ILoadBalancer balancer, LoadBalancerEndpoint[] endpoints)
        => Enumerable.Range(0, Keys).Select(i => endpoints[balancer.Pick(Key(i))].Id).ToArray();

    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash, 0.02)]
    [InlineData(LoadBalancingPolicies.Maglev, 0.005)]
    public void Pick_MillionKeys_FollowsWeights(string policy, double tolerance)
    {
        var endpoints = Endpoints(4, i => i + 1);
        var balancer = LoadBalancingPolicies.Create(policy, endpoints);
        var counts = new int[4];

        for (var i = 0; i < 1_000_000; i++)
        {
            counts[balancer.Pick(Key(i))]++;
        }

        output.WriteLine($"{policy}: {string.Join(", ", counts.Select(c => $"{c / 1e6:P2}"))}");
        for (var i = 0; i < 4; i++)
        {
            Assert.InRange(counts[i] / 1e6, ((i + 1) / 10.0) - tolerance, ((i + 1) / 10.0) + tolerance);
        }
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash, 0.0)]
    [InlineData(LoadBalancingPolicies.Maglev, 0.02)]
    public void RemoveOneOfTen_MovesAboutATenth_OthersStay(string policy, double strayAllowed)
    {
        var endpoints = Endpoints(10);
        var before = Assign(LoadBalancingPolicies.Create(policy, endpoints), endpoints);
        var remaining = endpoints.Where(e => e.Id != endpoints[3].Id).ToArray();
        var after = Assign(LoadBalancingPolicies.Create(policy, remaining), remaining);

        var moved = Enumerable.Range(0, Keys).Count(i => before[i] != after[i]) / (double)Keys;
        var strays = Enumerable.Range(0, Keys).Count(i => before[i] != endpoints[3].Id && before[i] != after[i]) / (double)Keys;
        output.WriteLine($"{policy}: {moved:P2} of keys moved, {strays:P3} of them not from the removed endpoint");

        Assert.True(moved <= (1.0 / 10) + 0.02, $"{moved:P2} moved");
        Assert.True(strays <= strayAllowed, $"{strays:P3} moved without need");
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public void AddOneToTen_MovesAboutAnEleventh(string policy)
    {
        var endpoints = Endpoints(10);
        var grown = Endpoints(11);
        var before = Assign(LoadBalancingPolicies.Create(policy, endpoints), endpoints);
        var after = Assign(LoadBalancingPolicies.Create(policy, grown), grown);

        var moved = Enumerable.Range(0, Keys).Count(i => before[i] != after[i]) / (double)Keys;
        output.WriteLine($"{policy}: {moved:P2} of keys moved");

        Assert.InRange(moved, (1.0 / 11) - 0.02, (1.0 / 11) + 0.02);
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public void SameEndpoints_SamePicks_WhateverTheRandomSource(string policy)
    {
        var first = LoadBalancingPolicies.Create(policy, Endpoints(7), new Random(1));
        var second = LoadBalancingPolicies.Create(policy, Endpoints(7), new Random(2));

        Assert.All(Enumerable.Range(0, 10_000), i => Assert.Equal(first.Pick(Key(i)), second.Pick(Key(i))));
    }

    [Fact]
    public void RingHash_RingSize_FollowsMinAndMax()
    {
        // minRingSize points per unit of weight (at least 160), scaled down only to fit maxRingSize.
        Assert.Equal(640, RingSize(LoadBalancingPolicies.Create(LoadBalancingPolicies.RingHash, Endpoints(4), hashing: new HashingOptions(MinRingSize: 64))));
        Assert.Equal(4096, RingSize(LoadBalancingPolicies.Create(LoadBalancingPolicies.RingHash, Endpoints(4), hashing: new HashingOptions(MinRingSize: 1024))));
        Assert.Equal(16, RingSize(LoadBalancingPolicies.Create(LoadBalancingPolicies.RingHash, Endpoints(4), hashing: new HashingOptions(MinRingSize: 1, MaxRingSize: 16))));
    }

    [Theory]
    [InlineData(65537, true)]
    [InlineData(65536, false)]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public void IsPrime_TableSizes(int value, bool prime) => Assert.Equal(prime, HashingOptions.IsPrime(value));

    private static int RingSize(ILoadBalancer balancer) => ((Forwarder.LoadBalancing.Policies.RingHash)balancer).RingSize;
}
