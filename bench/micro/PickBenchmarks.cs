using BenchmarkDotNet.Attributes;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Hashing;

namespace Forwarder.Bench.Micro;

/// <summary>Time and allocations of one pick, per policy and endpoint count.</summary>
[MemoryDiagnoser]
public class PickBenchmarks
{
    private ILoadBalancer _balancer = null!;
    private ulong[] _keys = null!;
    private int _next;

    [Params(LoadBalancingPolicies.RoundRobin, LoadBalancingPolicies.Random, LoadBalancingPolicies.LeastRequest, LoadBalancingPolicies.RingHash, LoadBalancingPolicies.Maglev)]
    public string Policy { get; set; } = LoadBalancingPolicies.RoundRobin;

    [Params(10, 100, 1000)]
    public int Endpoints { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var endpoints = Enumerable.Range(0, Endpoints).Select(i => new LoadBalancerEndpoint($"10.0.{i / 256}.{i % 256}:8080", 1 + (i % 3))).ToArray();
        _balancer = LoadBalancingPolicies.Create(Policy, endpoints, new Random(1));
        _keys = Enumerable.Range(0, 4096).Select(i => XxHash64.Hash(BitConverter.GetBytes(i))).ToArray();
    }

    [Benchmark]
    public int Pick() => _balancer.Pick(_keys[_next++ & 4095]);
}

/// <summary>Building a consistent-hash structure for 1,000 endpoints: what a membership change costs, off the hot path.</summary>
[MemoryDiagnoser]
public class RebuildBenchmarks
{
    private LoadBalancerEndpoint[] _endpoints = null!;

    [GlobalSetup]
    public void Setup()
        => _endpoints = Enumerable.Range(0, 1000).Select(i => new LoadBalancerEndpoint($"10.0.{i / 256}.{i % 256}:8080", 1)).ToArray();

    [Benchmark]
    public ILoadBalancer RingHash() => LoadBalancingPolicies.Create(LoadBalancingPolicies.RingHash, _endpoints);

    [Benchmark]
    public ILoadBalancer Maglev() => LoadBalancingPolicies.Create(LoadBalancingPolicies.Maglev, _endpoints);
}
