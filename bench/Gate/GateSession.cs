using System.Globalization;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Gate;

/// <summary>
/// The gate's processes, started once: a backend, the direct arm and the forwarder's tcp and http
/// listeners (and, when calibrating, the same two from the DelayInjection build). Each repetition
/// measures one set of arms and reports every sample under the name of the arm it stands for.
/// </summary>
internal sealed class GateSession : IAsyncDisposable
{
    private readonly GateSettings _settings;
    private readonly TextWriter _log;
    private readonly string _workDirectory;
    private readonly BenchBackend _backend;
    private readonly List<RunningArm> _running;

    private GateSession(GateSettings settings, TextWriter log, string workDirectory, BenchBackend backend, List<RunningArm> running, IReadOnlyDictionary<string, string> versions)
    {
        _settings = settings;
        _log = log;
        _workDirectory = workDirectory;
        _backend = backend;
        _running = running;
        Versions = versions;
    }

    public IReadOnlyDictionary<string, string> Versions { get; }

    public static async Task<GateSession> StartAsync(GateSettings settings, string forwarderPath, InjectedForwarder? injected, TextWriter log)
    {
        var tools = Tools.Find();
        var workDirectory = Directory.CreateTempSubdirectory("bench-gate-").FullName;
        var backend = await BenchBackend.StartAsync(CompareProtocol.Http, settings.Backend, tools, workDirectory, log).ConfigureAwait(false);
        var environment = new ArmEnvironment(workDirectory, backend.EndPoint, CompareProtocol.Http, 1, tools, forwarderPath, injected);
        List<string> names = ["direct", .. GateMetric.ProxyArms];
        if (injected is not null)
        {
            names.AddRange(GateMetric.ProxyArms.Select(arm => arm + "-injected"));
        }

        List<RunningArm> running = [];
        try
        {
            foreach (var name in names)
            {
                running.Add(await ArmCatalog.All[name].StartAsync(environment).ConfigureAwait(false));
            }
        }
        catch
        {
            await DisposeAllAsync(running, backend).ConfigureAwait(false);
            throw;
        }

        return new GateSession(settings, log, workDirectory, backend, running, Compare.Versions.Of(tools, forwarderPath));
    }

    /// <summary>
    /// Runs unmeasured repetitions (of both builds when calibrating) until the processes have
    /// settled: from a cold start the first repetitions drift by tens of percent, and a long
    /// continuous load does not settle them the way the repetitions' own rhythm does.
    /// </summary>
    public async Task WarmAsync(CancellationToken cancellationToken)
    {
        var injected = _running.Any(arm => ArmCatalog.IsInjected(arm.Name));
        for (var rep = 1; rep <= _settings.WarmupReps; rep++)
        {
            await RunArmsAsync(rep, injected: false, cancellationToken).ConfigureAwait(false);
            if (injected)
            {
                await RunArmsAsync(rep, injected: true, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One repetition: every arm alone in turn for latency, then again for throughput; the order rotates with the repetition.</summary>
    /// <param name="injected">Measure the DelayInjection build's arms in place of the normal ones.</param>
    public async Task<IReadOnlyList<GateSample>> RunRepAsync(int rep, bool injected, CancellationToken cancellationToken)
    {
        var samples = await RunArmsAsync(rep, injected, cancellationToken).ConfigureAwait(false);
        await _log.WriteLineAsync(Describe(rep, injected, samples)).ConfigureAwait(false);
        return samples;
    }

    private async Task<GateSample[]> RunArmsAsync(int rep, bool injected, CancellationToken cancellationToken)
    {
        RunningArm[] arms = [Find("direct"), .. GateMetric.ProxyArms.Select(arm => Find(injected ? arm + "-injected" : arm))];
        // Latency in short slices, the arms taking turns: a burst of interference then lands in
        // one slice of each arm rather than in one arm's whole run.
        var latency = arms.Select(_ => InvocationStats.NewHistogram()).ToArray();
        var slice = _settings.Duration / _settings.Slices;
        for (var s = 0; s < _settings.Slices; s++)
        {
            for (var k = 0; k < arms.Length; k++)
            {
                var i = (k + rep + s) % arms.Length;
                var stats = await ScenarioRunner.RunAsync(Scenario(arms[i], _settings.Connections, slice, TimeSpan.Zero), cancellationToken).ConfigureAwait(false);
                ThrowIfFailed(arms[i], stats, rep);
                latency[i].Add(stats.Latency);
            }
        }

        var throughput = new ScenarioStats[arms.Length];

        for (var k = 0; k < arms.Length; k++)
        {
            var i = (k + rep) % arms.Length;
            throughput[i] = await ScenarioRunner.RunAsync(Scenario(arms[i], _settings.MaxConnections, _settings.MaxDuration, _settings.Warmup), cancellationToken).ConfigureAwait(false);
            ThrowIfFailed(arms[i], throughput[i], rep);
        }

        var samples = new GateSample[arms.Length];
        for (var i = 0; i < arms.Length; i++)
        {
            if (latency[i].TotalCount == 0 || throughput[i].Completed == 0)
            {
                throw new GateRunException($"{arms[i].Name} completed no requests in repetition {rep}: there is nothing to compare.");
            }

            var name = i == 0 ? "direct" : GateMetric.ProxyArms[i - 1];
            samples[i] = new GateSample(name, rep, InterpolatedPercentile.Of(latency[i], 50), InterpolatedPercentile.Of(latency[i], 99), throughput[i].RequestsPerSecond);
        }

        return samples;
    }

    /// <summary>Stops the repetition at the first failed request; failures include requests left unfinished when a run ended, so a hung proxy stops it too.</summary>
    private static void ThrowIfFailed(RunningArm arm, ScenarioStats stats, int rep)
    {
        if (stats.Failed > 0)
        {
            throw new GateRunException($"{arm.Name} failed {stats.Failed} requests in repetition {rep} ({stats.Problems}): a proxy that fails requests does not pass the gate.");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await DisposeAllAsync(_running, _backend).ConfigureAwait(false);
        Directory.Delete(_workDirectory, recursive: true);
    }

    private static async Task DisposeAllAsync(List<RunningArm> running, BenchBackend backend)
    {
        foreach (var arm in running)
        {
            await arm.DisposeAsync().ConfigureAwait(false);
        }

        await backend.DisposeAsync().ConfigureAwait(false);
    }

    private RunningArm Find(string name) => _running.Find(arm => arm.Name == name) ?? throw new InvalidOperationException($"{name} was not started in this session.");

    private static Scenario Scenario(RunningArm arm, int connections, TimeSpan duration, TimeSpan warmup)
        => LoadCommand.CreateScenario(new LoadOptions(new Uri($"http://{arm.Entry}/"), null, 64, null, null, connections, duration, warmup, 1, TimeSpan.FromSeconds(10), null, null));

    private static string Describe(int rep, bool injected, GateSample[] samples)
        => string.Create(CultureInfo.InvariantCulture, $"  rep {rep}{(injected ? " (injected)" : string.Empty)}: ")
            + string.Join(" | ", samples.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Arm} p50 {s.P50Us:0.0}us p99 {s.P99Us:0.0}us {s.MaxRps / 1000:0.0}k req/s")));
}

/// <summary>The gate could not measure: an arm failed requests or a process would not start.</summary>
internal sealed class GateRunException(string message) : Exception(message);
