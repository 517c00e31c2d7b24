using System.IO.Hashing;
using BenchmarkDotNet.Attributes;
using Forwarder.LoadBalancing;

namespace Forwarder.Bench.Micro;

/// <summary>
/// xxHash64 (System.IO.Hashing) of a key as the hash policies hash one: an IPv6 address is 16
/// bytes, a cookie or header value 32, a URL 64.
/// </summary>
[MemoryDiagnoser]
public class XxHash64Benchmarks
{
    private byte[] _data = null!;

    [Params(16, 32, 64)]
    public int Length { get; set; }

    [GlobalSetup]
    public void Setup() => _data = Enumerable.Range(0, Length).Select(i => (byte)(i * 7)).ToArray();

    [Benchmark]
    public ulong Hash() => XxHash64.HashToUInt64(_data);
}

/// <summary>A pick for a client, hash included: hash its 16-byte address, then pick (100 endpoints).</summary>
[MemoryDiagnoser]
public class XxHash64PickBenchmarks
{
    private readonly byte[][] _clients = new byte[4096][];
    private ILoadBalancer _balancer = null!;
    private int _next;

    [Params(LoadBalancingPolicies.RingHash, LoadBalancingPolicies.Maglev)]
    public string Policy { get; set; } = LoadBalancingPolicies.RingHash;

    [GlobalSetup]
    public void Setup()
    {
        var endpoints = Enumerable.Range(0, 100).Select(i => new LoadBalancerEndpoint($"10.0.0.{i}:8080", 1 + (i % 3))).ToArray();
        _balancer = LoadBalancingPolicies.Create(Policy, endpoints);
        var random = new Random(1);
        for (var i = 0; i < _clients.Length; i++)
        {
            _clients[i] = new byte[16];
            random.NextBytes(_clients[i]);
        }
    }

    [Benchmark]
    public int HashThenPick() => _balancer.Pick(XxHash64.HashToUInt64(_clients[_next++ & 4095]));
}
