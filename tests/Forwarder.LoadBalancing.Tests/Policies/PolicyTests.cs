using Forwarder.LoadBalancing;

namespace Forwarder.LoadBalancing.Tests.Policies;

public sealed class PolicyTests
{
    private static LoadBalancerEndpoint[] Endpoints(params int[] weights)
        => weights.Select((w, i) => new LoadBalancerEndpoint($"e{i}", w)).ToArray();

    [Fact]
    public void RoundRobin_Weights511_IsSmooth()
    {
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.RoundRobin, Endpoints(5, 1, 1));

        var picks = string.Concat(Enumerable.Range(0, 14).Select(_ => "abc"[balancer.Pick()]));

        // nginx's published sequence for weights 5,1,1, twice.
        Assert.Equal("aabacaaaabacaa", picks);
    }

    [Fact]
    public void RoundRobin_SequenceTooLongToPrecompute_OnePeriodMatchesWeightsExactly()
    {
        // Coprime weights summing to about 2M: past the precomputed limit, picks are computed live.
        int[] weights = [999_983, 999_979, 7];
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.RoundRobin, Endpoints(weights));
        var counts = new int[3];

        for (var i = 0; i < weights.Sum(); i++)
        {
            counts[balancer.Pick()]++;
        }

        Assert.Equal(weights, counts);
    }

    [Fact]
    public void RoundRobin_EqualWeights_Rotates()
    {
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.RoundRobin, Endpoints(1, 1, 1));

        Assert.Equal([0, 1, 2, 0, 1, 2], Enumerable.Range(0, 6).Select(_ => balancer.Pick()));
    }

    [Theory]
    [InlineData(LoadBalancingPolicies.RoundRobin)]
    [InlineData(LoadBalancingPolicies.Random)]
    [InlineData(LoadBalancingPolicies.LeastRequest)]
    public void WeightedPolicies_MillionPicks_FollowWeightsWithinHalfAPercent(string policy)
    {
        int[] weights = [1, 2, 3, 4];
        var balancer = LoadBalancingPolicies.Create(policy, Endpoints(weights), new Random(7));
        var counts = new int[weights.Length];

        for (var i = 0; i < 1_000_000; i++)
        {
            counts[balancer.Pick()]++;
        }

        for (var i = 0; i < weights.Length; i++)
        {
            var expected = weights[i] / 10.0;
            Assert.InRange(counts[i] / 1_000_000.0, expected - 0.005, expected + 0.005);
        }
    }

    [Theory]
    [InlineData(8)]
    [InlineData(64)]
    [InlineData(512)]
    public void LeastRequest_MillionPicksUnderSteadyLoad_FollowWeightsWithinOnePercent(int concurrency)
    {
        // Requests of equal length: each pick starts one, and the oldest ends once `concurrency` are open.
        int[] weights = [1, 2, 3, 4];
        var endpoints = Endpoints(weights);
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.LeastRequest, endpoints, new Random(11));
        var open = new Queue<int>();
        var counts = new int[weights.Length];

        for (var i = 0; i < 1_000_000; i++)
        {
            var pick = balancer.Pick();
            counts[pick]++;
            endpoints[pick].Begin();
            open.Enqueue(pick);
            if (open.Count > concurrency)
            {
                endpoints[open.Dequeue()].End();
            }
        }

        for (var i = 0; i < weights.Length; i++)
        {
            var expected = weights[i] / 10.0;
            Assert.InRange(counts[i] / 1_000_000.0, expected - 0.01, expected + 0.01);
        }
    }

    [Fact]
    public void Random_SkewedWeights_MillionPicksFollowThem()
    {
        int[] weights = [1, 1000, 3, 7, 1, 250];
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.Random, Endpoints(weights), new Random(13));
        var counts = new int[weights.Length];

        for (var i = 0; i < 1_000_000; i++)
        {
            counts[balancer.Pick()]++;
        }

        for (var i = 0; i < weights.Length; i++)
        {
            var expected = weights[i] / (double)weights.Sum();
            Assert.InRange(counts[i] / 1_000_000.0, expected * 0.9 - 0.0005, expected * 1.1 + 0.0005);
        }
    }

    [Fact]
    public void LeastRequest_AvoidsBusyEndpoint()
    {
        var endpoints = Endpoints(1, 1);
        for (var i = 0; i < 10; i++)
        {
            endpoints[0].Begin();
        }

        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.LeastRequest, endpoints, new Random(3));

        Assert.All(Enumerable.Range(0, 100), _ => Assert.Equal(1, balancer.Pick()));
    }

    [Fact]
    public void LeastRequest_HonoursWeightWhenComparingLoad()
    {
        // Four in flight on weight 4 is lighter than two on weight 1.
        var endpoints = Endpoints(4, 1);
        for (var i = 0; i < 4; i++)
        {
            endpoints[0].Begin();
        }

        endpoints[1].Begin();
        endpoints[1].Begin();
        var balancer = LoadBalancingPolicies.Create(LoadBalancingPolicies.LeastRequest, endpoints, new Random(5));

        Assert.Equal(0, balancer.Pick());
    }

    [Fact]
    public void Create_UnknownPolicy_NamesTheKnownOnes()
    {
        var error = Assert.Throws<ArgumentException>(() => LoadBalancingPolicies.Create("fastest", Endpoints(1)));

        Assert.Contains("round_robin, random, least_request", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Endpoint_ZeroWeight_IsRejected()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new LoadBalancerEndpoint("e", 0));
}
