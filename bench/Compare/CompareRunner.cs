using System.Diagnostics;
using System.Net;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Compare;

/// <summary>
/// Runs arms side by side against one backend: every arm is started once, then each repetition
/// runs every rate on every arm in turn (A B C A B C ...), so slow drifts of a noisy machine hit
/// all arms alike. The proxies' CPU and memory are sampled during each run.
/// </summary>
internal static class CompareRunner
{
    public static async Task<CompareResult> RunAsync(CompareOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var started = DateTimeOffset.UtcNow;
        var tools = Tools.Find();
        var workDirectory = Directory.CreateTempSubdirectory("bench-compare-").FullName;
        List<string> skipped = [];
        List<Arm> arms = [];
        foreach (var name in options.Arms)
        {
            var arm = ArmCatalog.All[name];
            if (!ArmCatalog.Supports(name, options.Protocol))
            {
                skipped.Add($"{name}: cannot carry {options.Protocol.ToString().ToUpperInvariant()} request/response");
            }
            else if (arm.Needs is { } tool && tools[tool] is null)
            {
                skipped.Add($"{name}: {tool} is not installed (on Debian: apt-get install {tool})");
            }
            else
            {
                arms.Add(arm);
            }
        }

        foreach (var reason in skipped)
        {
            await log.WriteLineAsync($"skipping {reason}").ConfigureAwait(false);
        }

        var forwarderPath = arms.Any(a => ArmCatalog.IsOurs(a.Name)) ? ForwarderBinary.Locate(options.ForwarderPath, log) : string.Empty;
        await using var backend = await BenchBackend.StartAsync(options.Protocol, options.Backend, tools, workDirectory, log).ConfigureAwait(false);
        var yarpPath = arms.Any(a => ArmCatalog.IsYarp(a.Name)) ? ForwarderBinary.LocateYarp(options.YarpPath, log) : null;
        var environment = new ArmEnvironment(workDirectory, backend.EndPoint, options.Protocol, options.ProxyThreads, tools, forwarderPath, yarpPath);
        List<RunningArm> running = [];
        List<ArmRun> runs = [];
        try
        {
            foreach (var arm in arms)
            {
                running.Add(await arm.StartAsync(environment).ConfigureAwait(false));
                await log.WriteLineAsync($"started {arm.Name}: {arm.Description}").ConfigureAwait(false);
            }

            for (var rep = 1; rep <= options.Reps; rep++)
            {
                foreach (var rate in options.Rates)
                {
                    foreach (var arm in running)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        var run = await RunOneAsync(options, arm, rate, rep, cancellationToken).ConfigureAwait(false);
                        runs.Add(run);
                        await log.WriteLineAsync(Describe(run, options.Reps)).ConfigureAwait(false);
                    }
                }
            }
        }
        finally
        {
            foreach (var arm in running)
            {
                await arm.DisposeAsync().ConfigureAwait(false);
            }
        }

        Directory.Delete(workDirectory, recursive: true);
        return new CompareResult(options, [.. running.Select(a => a.Name)], runs, skipped, Versions.Of(tools, forwarderPath), Versions.Machine(), started);
    }

    private static async Task<ArmRun> RunOneAsync(CompareOptions options, RunningArm arm, double? rate, int rep, CancellationToken cancellationToken)
    {
        var load = new LoadOptions(
            options.Protocol == CompareProtocol.Http ? new Uri($"http://{arm.Entry}/") : null,
            options.Protocol == CompareProtocol.Tcp ? arm.Entry : null,
            options.Size,
            rate,
            null,
            options.Connections,
            options.Duration,
            options.Warmup,
            1,
            TimeSpan.FromSeconds(10),
            null,
            null);
        var scenario = LoadCommand.CreateScenario(load);
        if (arm.Proxies.Count == 0)
        {
            return new ArmRun(arm.Name, rate, rep, await ScenarioRunner.RunAsync(scenario, cancellationToken).ConfigureAwait(false), null, null, null);
        }

        // Sample over the measured window only: the warm-up's CPU is not the run's.
        var measure = Task.Delay(options.Warmup, cancellationToken);
        var stats = ScenarioRunner.RunAsync(scenario, cancellationToken);
        await measure.ConfigureAwait(false);
        await using var sampler = new ProcessSampler(arm.Pids, TimeSpan.FromMilliseconds(100));
        var result = await stats.ConfigureAwait(false);
        var (cpu, peak, mean) = await sampler.StopAsync().ConfigureAwait(false);
        return new ArmRun(arm.Name, rate, rep, result, cpu, peak, mean, sampler.Samples);
    }

    private static string Describe(ArmRun run, int reps)
    {
        var stats = run.Stats;
        var cpu = run.CpuMsPerThousand is { } ms ? $", proxy CPU {ms:0.0} ms/1k req" : string.Empty;
        var rate = run.Rate is { } r ? $"{r:0} req/s" : "max";
        return string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"  rep {run.Rep}/{reps} {rate,-10} {run.Arm,-14} {stats.RequestsPerSecond,10:0} req/s  p50 {Format.Latency(stats.Latency.ValueAt(50))}  p99 {Format.Latency(stats.Latency.ValueAt(99))}  errors {stats.Failed}{cpu}{(stats.Clean ? string.Empty : $"  NOT CLEAN: {stats.Problems}")}");
    }
}
