using System.Globalization;
using System.Net;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;

namespace Forwarder.LoadBalancing.Tests.Policies;

/// <summary>
/// Picks recorded with the hand-written xxHash64 the project had before System.IO.Hashing: nodes
/// running either build, and every build after, must send a client to the same endpoint.
/// </summary>
public sealed class PinnedPicksTests
{
    private static readonly LoadBalancerEndpoint[] Endpoints =
        Enumerable.Range(0, 10).Select(i => new LoadBalancerEndpoint($"10.2.0.{i}:8080", 1 + (i % 3))).ToArray();

    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash, false, "3,5,5,5,5,2,7,8,5,3,3,5,2,8,2,5,9,7,5,4,3,4,8,5,7,9,4,4,6,7,8,7")]
    [InlineData(LoadBalancingPolicies.RingHash, true, "8,8,5,1,5,3,1,2,8,7,1,1,4,9,4,8,4,5,7,7,4,4,2,8,7,2,4,0,7,4,1,5")]
    [InlineData(LoadBalancingPolicies.Maglev, false, "1,0,7,2,5,5,2,2,4,8,2,3,4,0,0,7,7,7,4,8,1,2,4,8,4,5,4,0,2,1,0,8")]
    [InlineData(LoadBalancingPolicies.Maglev, true, "8,8,7,5,9,8,1,3,8,2,1,1,2,2,5,6,5,3,8,2,7,5,5,2,2,4,5,5,4,9,0,2")]
    public void Pick_ClientAddresses_AsRecorded(string policy, bool ipv6, string expected)
    {
        var balancer = LoadBalancingPolicies.Create(policy, Endpoints);

        var picks = Enumerable.Range(1, 32).Select(i => balancer.Pick(AddressHash.Of(Client(i, ipv6))).ToString(CultureInfo.InvariantCulture));

        Assert.Equal(expected, string.Join(',', picks));
    }

    private static IPAddress Client(int i, bool ipv6)
        => IPAddress.Parse(ipv6 ? $"2001:db8::{i:x}" : $"198.18.0.{i}");
}
