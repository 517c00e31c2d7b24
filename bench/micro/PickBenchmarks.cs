using System.IO.Hashing;
using BenchmarkDotNet.Attributes;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Health;

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
        _balancer = LoadBalancingPolicies.Create(Policy, endpoints);
        _keys = Enumerable.Range(0, 4096).Select(i => XxHash64.HashToUInt64(BitConverter.GetBytes(i))).ToArray();
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

/// <summary>
/// A pick through <see cref="ServiceBalancer"/>, as the forwarder makes it: one snapshot read
/// and, with an endpoint out of service, a map from the subset's index to the service's.
/// </summary>
[MemoryDiagnoser]
public class ServiceBalancerPickBenchmarks
{
    private readonly ulong[] _keys = new ulong[4096];
    private ServiceBalancer _balancer = null!;
    private int _next;

    [Params(LoadBalancingPolicies.RoundRobin, LoadBalancingPolicies.LeastRequest, LoadBalancingPolicies.RingHash, LoadBalancingPolicies.Maglev)]
    public string Policy { get; set; } = LoadBalancingPolicies.RoundRobin;

    [Params(false, true)]
    public bool OneEjected { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var endpoints = Enumerable.Range(0, 100).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:8080", 1 + (i % 3))).ToArray();
        var health = new ServiceHealth(TimeProvider.System);
        var states = health.Resolve([.. endpoints.Select(e => e.Id)]);
        health.Configure(states, new OutlierDetectionOptions(1, TimeSpan.FromHours(1), TimeSpan.FromHours(1), 10));
        _balancer = new ServiceBalancer(Policy, endpoints, states, activeChecks: false, schedule: static work => work());
        health.Subscribe(_balancer.Invalidate);
        if (OneEjected)
        {
            health.ReportFailure(states[42]);
        }

        var random = new Random(1);
        for (var i = 0; i < _keys.Length; i++)
        {
            _keys[i] = (ulong)random.NextInt64();
        }
    }

    [Benchmark]
    public int Pick() => _balancer.Pick(_keys[_next++ & 4095]);
}
