using System.Net;
using Forwarder.Bench.Compare;

namespace Forwarder.Bench.Mesh;

/// <summary>Where a mesh arm's proxies run: the topology, files, the machine's tools and the forwarder to run.</summary>
internal sealed record MeshEnvironment(string WorkDirectory, MeshTopology Topology, bool Http, Tools Tools, string ForwarderPath);

/// <summary>A started mesh arm: where the client's connections go (in turn), and every proxy process it runs.</summary>
internal sealed record RunningMeshArm(string Name, IReadOnlyList<IPEndPoint> Entries, IReadOnlyList<PeerProcess> Proxies) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        foreach (var proxy in Proxies)
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>One way of putting a mesh data plane between the client and the service.</summary>
/// <param name="Needs">A peer tool the arm cannot run without, or null.</param>
internal sealed record MeshArm(string Name, string Description, string? Needs, Func<MeshEnvironment, Task<RunningMeshArm>> StartAsync);

/// <summary>
/// The mesh arms. Node mode is the EdgeMesh-agent / ztunnel shape: one proxy per node, the client
/// talks to its own node's proxy, which balances over every instance (one hop). Sidecar mode is
/// Istio's: every app instance has its own proxy, the client's balances over the instances'
/// sidecars, each of which hands the request to its instance (two hops).
/// </summary>
internal static class MeshArms
{
    public static readonly IReadOnlyDictionary<string, MeshArm> All = new MeshArm[]
    {
        new("no-mesh", "baseline: the client calls the instances directly", null, env => Task.FromResult(new RunningMeshArm("no-mesh", env.Topology.Instances, []))),
        new("node-forwarder", "node mode: a forwarder per node, one hop", null, env => StartNodeModeAsync(env, "node-forwarder", haproxy: false)),
        new("node-haproxy", "node mode with HAProxy per node, one hop", "haproxy", env => StartNodeModeAsync(env, "node-haproxy", haproxy: true)),
        new("sidecar-forwarder", "sidecar mode: a forwarder beside every app instance on both sides, two hops", null, env => StartSidecarModeAsync(env, "sidecar-forwarder", haproxy: false)),
        new("sidecar-haproxy", "sidecar mode with HAProxy standing in for Envoy, two hops", "haproxy", env => StartSidecarModeAsync(env, "sidecar-haproxy", haproxy: true)),
    }.ToDictionary(a => a.Name, StringComparer.Ordinal);

    public static bool UsesForwarder(string arm) => arm.EndsWith("-forwarder", StringComparison.Ordinal);

    private static async Task<RunningMeshArm> StartNodeModeAsync(MeshEnvironment env, string name, bool haproxy)
    {
        List<PeerProcess> proxies = [];
        List<IPEndPoint> entries = [];
        await StartAllAsync(proxies, async () =>
        {
            for (var node = 0; node < env.Topology.Nodes; node++)
            {
                var listen = FreePort.Next();
                proxies.Add(await StartProxyAsync(env, $"{name}-node{node + 1}", haproxy, listen, env.Topology.Instances).ConfigureAwait(false));
                entries.Add(listen);
            }
        }).ConfigureAwait(false);
        return new RunningMeshArm(name, entries, proxies);
    }

    private static async Task<RunningMeshArm> StartSidecarModeAsync(MeshEnvironment env, string name, bool haproxy)
    {
        List<PeerProcess> proxies = [];
        List<IPEndPoint> entries = [];
        await StartAllAsync(proxies, async () =>
        {
            List<IPEndPoint> inbound = [];
            for (var i = 0; i < env.Topology.Instances.Count; i++)
            {
                var listen = FreePort.Next();
                proxies.Add(await StartProxyAsync(env, $"{name}-instance{i + 1}", haproxy, listen, [env.Topology.Instances[i]]).ConfigureAwait(false));
                inbound.Add(listen);
            }

            // The client app has an instance on every node, each with its own outbound sidecar.
            for (var node = 0; node < env.Topology.Nodes; node++)
            {
                var listen = FreePort.Next();
                proxies.Add(await StartProxyAsync(env, $"{name}-client{node + 1}", haproxy, listen, inbound).ConfigureAwait(false));
                entries.Add(listen);
            }
        }).ConfigureAwait(false);
        return new RunningMeshArm(name, entries, proxies);
    }

    /// <summary>Runs the starts; if one fails, stops those already running.</summary>
    private static async Task StartAllAsync(List<PeerProcess> started, Func<Task> start)
    {
        try
        {
            await start().ConfigureAwait(false);
        }
        catch
        {
            foreach (var process in started)
            {
                await process.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    private static async Task<PeerProcess> StartProxyAsync(MeshEnvironment env, string name, bool haproxy, IPEndPoint listen, IReadOnlyList<IPEndPoint> endpoints)
    {
        var log = Path.Combine(env.WorkDirectory, $"{name}.log");
        if (haproxy)
        {
            var config = Path.Combine(env.WorkDirectory, $"{name}.cfg");
            await File.WriteAllTextAsync(config, MeshConfigs.Haproxy(listen, endpoints, env.Http)).ConfigureAwait(false);
            return await PeerProcess.StartAsync(name, env.Tools.Haproxy!, ["-f", config, "-db"], listen, log).ConfigureAwait(false);
        }

        var yaml = Path.Combine(env.WorkDirectory, $"{name}.yaml");
        await File.WriteAllTextAsync(yaml, MeshConfigs.Forwarder(listen, endpoints, env.Http)).ConfigureAwait(false);
        return await PeerProcess.StartAsync(name, env.ForwarderPath, ["--config", yaml, "--log-level", "Warning"], listen, log).ConfigureAwait(false);
    }
}
