using System.IO.Hashing;
using BenchmarkDotNet.Attributes;
using Forwarder.LoadBalancing;
using Forwarder.LoadBalancing.Health;
using Forwarder.LoadBalancing.Locality;

namespace Forwarder.Bench.Micro;

/// <summary>
/// What locality adds to a pick: 99 endpoints on three levels (33 each: this node, this zone,
/// the rest), against the same endpoints on one level (the baseline). Spilling, 17 of the 33
/// on this node are ejected, so about two thirds of picks (16/33 x 1.4) stay on it and the rest
/// go to the zone: the level draw is exercised, not just the first level.
/// </summary>
[MemoryDiagnoser]
public class LocalityPickBenchmarks
{
    private readonly ulong[] _keys = new ulong[4096];
    private ServiceBalancer _balancer = null!;
    private int _next;

    [Params(LoadBalancingPolicies.RoundRobin, LoadBalancingPolicies.RingHash)]
    public string Policy { get; set; } = LoadBalancingPolicies.RoundRobin;

    [Params(false, true)]
    public bool Locality { get; set; }

    [Params(false, true)]
    public bool Spilling { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        const int Count = 99;
        var endpoints = Enumerable.Range(0, Count).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:8080", 1)).ToArray();
        var health = new ServiceHealth(TimeProvider.System);
        var states = health.Resolve([.. endpoints.Select(e => e.Id)]);
        health.Configure(states, new OutlierDetectionOptions(1, TimeSpan.FromHours(1), TimeSpan.FromHours(1), 100));
        var levels = Enumerable.Range(0, Count).Select(i => i / 33).ToArray();
        _balancer = new ServiceBalancer(Policy, endpoints, states, activeChecks: false, schedule: static work => work(),
            locality: Locality ? new LocalityOptions(levels, PriorityLoad.DefaultOverprovisioningFactor, new LevelPicks()) : null);
        health.Subscribe(_balancer.Invalidate);
        for (var i = 0; Spilling && i < 17; i++)
        {
            health.ReportFailure(states[i]);
        }

        for (var i = 0; i < _keys.Length; i++)
        {
            _keys[i] = XxHash64.HashToUInt64(BitConverter.GetBytes(i));
        }
    }

    [Benchmark]
    public int Pick() => Policy == LoadBalancingPolicies.RingHash ? _balancer.Pick(_keys[_next++ & 4095]) : _balancer.Pick();
}
