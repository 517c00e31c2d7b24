using System.IO.Hashing;
using Forwarder.LoadBalancing;

namespace Forwarder.LoadBalancing.Tests.Policies;

public sealed class BoundedLoadTests
{
    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash, 125)]
    [InlineData(LoadBalancingPolicies.Maglev, 125)]
    [InlineData(LoadBalancingPolicies.Maglev, 150)]
    public void HotKey_NoEndpointExceedsFactorTimesAverage(string policy, int factor)
    {
        var group = new LoadGroup();
        var endpoints = Enumerable.Range(0, 10).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:80", 1, group)).ToArray();
        var balancer = LoadBalancingPolicies.Create(policy, endpoints, new Random(3), new HashingOptions(BalanceFactor: factor));
        var random = new Random(11);
        var hot = XxHash64.HashToUInt64("hot"u8);

        for (var i = 0; i < 20_000; i++)
        {
            // Seven in ten requests carry the same key: unbounded, one endpoint would take them all.
            var key = random.Next(10) < 7 ? hot : XxHash64.HashToUInt64(BitConverter.GetBytes(i));
            endpoints[balancer.Pick(key)].Begin();
            var cap = Math.Ceiling(factor / 100.0 * group.InFlight / endpoints.Length);
            Assert.True(endpoints.Max(e => e.InFlight) <= cap, $"after {i + 1} picks the busiest endpoint has {endpoints.Max(e => e.InFlight)}, cap {cap}");
        }
    }

    [Fact]
    public void NoBound_HotKeyStaysOnOneEndpoint()
    {
        var group = new LoadGroup();
        var endpoints = Enumerable.Range(0, 10).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:80", 1, group)).ToArray();
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.Maglev, endpoints);
        var hot = XxHash64.HashToUInt64("hot"u8);

        var picks = Enumerable.Range(0, 100).Select(_ => { var i = balancer.Pick(hot); endpoints[i].Begin(); return i; }).Distinct();

        Assert.Single(picks);
        Assert.Equal(100, group.InFlight);
    }
}
