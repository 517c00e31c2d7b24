using System.Globalization;
using System.Net;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Mesh;

/// <summary>
/// Runs the mesh experiment: for each protocol, K instances in one backend process per node, every
/// arm's proxies started once, then each repetition runs every rate on every arm in turn, with the
/// CPU and memory of all of an arm's proxies sampled together.
/// </summary>
internal static class MeshRunner
{
    /// <summary>Low rates run long enough to give each percentile this many requests at least.</summary>
    private const int MinimumRequests = 300;

    /// <summary>Closed-loop load each arm gets once, unmeasured, before its first run (at most the run duration).</summary>
    private static readonly TimeSpan WarmArmDuration = TimeSpan.FromSeconds(2);

    public static async Task<MeshResult> RunAsync(MeshOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var started = DateTimeOffset.UtcNow;
        var tools = Tools.Find();
        List<string> skipped = [];
        var arms = options.Arms.Select(name => MeshArms.All[name]).Where(arm =>
        {
            if (arm.Needs is { } tool && tools[tool] is null)
            {
                skipped.Add($"{arm.Name}: {tool} is not installed (on Debian: apt-get install {tool})");
                return false;
            }

            return true;
        }).ToList();
        foreach (var reason in skipped)
        {
            await log.WriteLineAsync($"skipping {reason}").ConfigureAwait(false);
        }

        var forwarderPath = arms.Any(a => MeshArms.UsesForwarder(a.Name)) ? ForwarderBinary.Locate(options.ForwarderPath, log) : string.Empty;
        List<MeshRun> runs = [];
        List<MeshFootprint> footprints = [];
        foreach (var protocol in options.Protocols)
        {
            var workDirectory = Directory.CreateTempSubdirectory("bench-mesh-").FullName;
            var topology = new MeshTopology(options.Instances, options.Nodes);
            var http = protocol == CompareProtocol.Http;
            List<PeerProcess> backends = [];
            List<RunningMeshArm> running = [];
            try
            {
                for (var node = 0; node < topology.Nodes; node++)
                {
                    backends.Add(await StartBackendAsync(topology.InstancesOn(node).ToList(), http, node, workDirectory).ConfigureAwait(false));
                }

                await log.WriteLineAsync($"{protocol.ToString().ToUpperInvariant()}: {topology.Instances.Count} instances on {topology.Nodes} nodes").ConfigureAwait(false);
                var environment = new MeshEnvironment(workDirectory, topology, http, tools, forwarderPath);
                foreach (var arm in arms)
                {
                    var up = await arm.StartAsync(environment).ConfigureAwait(false);
                    running.Add(up);
                    var idle = up.Proxies.Count == 0 ? 0 : ProcessSampler.Read([.. up.Proxies.Select(p => p.Pid)]).RssBytes;
                    footprints.Add(new MeshFootprint(protocol, up.Name, up.Proxies.Count, idle));
                    await log.WriteLineAsync($"started {arm.Name}: {arm.Description} ({up.Proxies.Count} proxies, {idle / 1048576.0:0} MiB idle)").ConfigureAwait(false);
                }

                // Freshly started proxies compile their hot paths on the first requests; that
                // cost is start-up, not the data plane's, so every arm is loaded once unmeasured.
                foreach (var arm in running)
                {
                    await ScenarioRunner.RunAsync(LoadCommand.CreateScenario(Load(options, protocol, arm, null, Min(options.Duration, WarmArmDuration)), arm.Entries), cancellationToken).ConfigureAwait(false);
                }

                for (var rep = 1; rep <= options.Reps; rep++)
                {
                    foreach (var rate in options.Rates)
                    {
                        foreach (var arm in running)
                        {
                            var run = await RunOneAsync(options, protocol, arm, rate, rep, cancellationToken).ConfigureAwait(false);
                            runs.Add(run);
                            await log.WriteLineAsync(Describe(run, options.Reps)).ConfigureAwait(false);
                        }
                    }
                }
            }
            finally
            {
                foreach (var process in running.Cast<IAsyncDisposable>().Concat(backends))
                {
                    await process.DisposeAsync().ConfigureAwait(false);
                }

                Directory.Delete(workDirectory, recursive: true);
            }
        }

        return new MeshResult(options, runs, footprints, skipped, Versions.Of(tools, forwarderPath), Versions.Machine(), started);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>The measured time at a rate: the configured duration, longer at low rates so every run has enough requests.</summary>
    public static TimeSpan DurationAt(double? rate, TimeSpan duration)
        => rate is { } r && MinimumRequests / r > duration.TotalSeconds ? TimeSpan.FromSeconds(Math.Ceiling(MinimumRequests / r)) : duration;

    private static LoadOptions Load(MeshOptions options, CompareProtocol protocol, RunningMeshArm arm, double? rate, TimeSpan duration)
    {
        var http = protocol == CompareProtocol.Http;
        return new LoadOptions(
            http ? new Uri("http://127.0.0.1/") : null,
            http ? null : arm.Entries[0],
            64,
            rate,
            null,
            options.Connections,
            duration,
            options.Warmup,
            1,
            TimeSpan.FromSeconds(10),
            null,
            null);
    }

    private static async Task<MeshRun> RunOneAsync(MeshOptions options, CompareProtocol protocol, RunningMeshArm arm, double? rate, int rep, CancellationToken cancellationToken)
    {
        var scenario = LoadCommand.CreateScenario(Load(options, protocol, arm, rate, DurationAt(rate, options.Duration)), arm.Entries);
        if (arm.Proxies.Count == 0)
        {
            return new MeshRun(protocol, arm.Name, rate, rep, await ScenarioRunner.RunAsync(scenario, cancellationToken).ConfigureAwait(false), null, null, null);
        }

        // Sample over the measured window only: the warm-up's CPU is not the run's.
        var measure = Task.Delay(options.Warmup, cancellationToken);
        var stats = ScenarioRunner.RunAsync(scenario, cancellationToken);
        await measure.ConfigureAwait(false);
        await using var sampler = new ProcessSampler([.. arm.Proxies.Select(p => p.Pid)], TimeSpan.FromMilliseconds(200));
        var result = await stats.ConfigureAwait(false);
        var (cpu, peak, mean) = await sampler.StopAsync().ConfigureAwait(false);
        return new MeshRun(protocol, arm.Name, rate, rep, result, cpu, peak, mean);
    }

    /// <summary>One node's instances, served by one built-in backend process (its own threads, outside the client's CPU).</summary>
    private static Task<PeerProcess> StartBackendAsync(IReadOnlyList<IPEndPoint> instances, bool http, int node, string workDirectory)
    {
        var self = typeof(MeshRunner).Assembly.Location;
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return PeerProcess.StartAsync(
            $"node{node + 1} instances",
            dotnet,
            [self, "serve", http ? "--http" : "--echo", string.Join(',', instances)],
            instances[^1],
            Path.Combine(workDirectory, $"backend-node{node + 1}.log"),
            new Dictionary<string, string> { ["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "1" });
    }

    private static string Describe(MeshRun run, int reps)
    {
        var stats = run.Stats;
        var cpu = run.CpuMsPerThousand is { } ms ? $", proxies' CPU {ms:0.0} ms/1k req" : string.Empty;
        var rate = run.Rate is { } r ? $"{r:0} req/s" : "max";
        return string.Create(
            CultureInfo.InvariantCulture,
            $"  {run.Protocol.ToString().ToLowerInvariant()} rep {run.Rep}/{reps} {rate,-10} {run.Arm,-18} {stats.RequestsPerSecond,9:0} req/s  p50 {Format.Latency(stats.Latency.ValueAt(50))}  p99 {Format.Latency(stats.Latency.ValueAt(99))}  errors {stats.Failed}{cpu}{(stats.Clean ? string.Empty : $"  NOT CLEAN: {stats.Problems}")}");
    }
}
