using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using Forwarder.LoadBalancing;

namespace Forwarder.LoadBalancing.Tests.Policies;

/// <summary>
/// Every node must map a key to the same endpoint: nothing per-process (randomized string hashes,
/// random seeds) may leak into the hash policies. A second process computes the same picks.
/// </summary>
public sealed class CrossProcessDeterminismTests
{
    [Theory]
    [InlineData(LoadBalancingPolicies.RingHash)]
    [InlineData(LoadBalancingPolicies.Maglev)]
    public async Task Picks_InAnotherProcess_AreTheSame(string policy)
    {
        const int endpointCount = 25;
        const int keys = 2_000;
        var endpoints = Enumerable.Range(0, endpointCount).Select(i => new LoadBalancerEndpoint($"10.1.{i / 256}.{i % 256}:8080", 1 + (i % 3))).ToArray();
        var balancer = LoadBalancingPolicies.Create(policy, endpoints);
        var here = string.Join(',', Enumerable.Range(0, keys).Select(i => balancer.Pick(XxHash64.HashToUInt64(BitConverter.GetBytes(i))).ToString(CultureInfo.InvariantCulture)));

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Forwarder.LoadBalancing.PickTool.dll"));
        start.ArgumentList.Add(policy);
        start.ArgumentList.Add(endpointCount.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add(keys.ToString(CultureInfo.InvariantCulture));
        using var process = Process.Start(start)!;
        var there = (await process.StandardOutput.ReadToEndAsync()).Trim();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, process.ExitCode);
        Assert.Equal(here, there);
    }
}
