using System.Globalization;
using Forwarder.Bench.Compare;
using Forwarder.Bench.Histograms;
using Forwarder.Bench.Load;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Gate;

/// <summary>
/// The gate's processes, started once: an HTTP/1.1 and an h2c backend, the direct arms (one per
/// protocol), and each build's tcp listener, http listener, pair of nodes joined by a link and
/// native HTTP/2 front (base and current; more when calibrating). Every repetition measures every arm,
/// the builds interleaved in short slices on the same CPU, and reports each build's figures with
/// the direct arms' of the same repetition, so a ratio between builds compares like with like.
/// </summary>
internal sealed class GateSession : IAsyncDisposable
{
    /// <summary>How many times a repetition in which an arm completed nothing is run again.</summary>
    private const int EmptyRetries = 2;

    private readonly GateSettings _settings;
    private readonly TextWriter _log;
    private readonly string _workDirectory;
    private readonly IReadOnlyList<BenchBackend> _backends;
    private readonly IReadOnlyList<RunningArm> _directs;
    private readonly IReadOnlyList<(GateBuild Build, RunningArm[] Proxies)> _builds;
    private readonly List<GateFreezer> _freezers;

    private GateSession(GateSettings settings, TextWriter log, string workDirectory, IReadOnlyList<BenchBackend> backends, IReadOnlyList<RunningArm> directs, IReadOnlyList<(GateBuild, RunningArm[])> builds, IReadOnlyDictionary<string, string> versions)
    {
        _settings = settings;
        _log = log;
        _workDirectory = workDirectory;
        _backends = backends;
        _directs = directs;
        _builds = builds;
        Versions = versions;
        _freezers = [.. builds.Where(b => b.Item1.Freeze is not null).Select(b => new GateFreezer(b.Item1.Freeze!, [.. b.Item2.SelectMany(arm => arm.Proxies)]))];
    }

    public IReadOnlyDictionary<string, string> Versions { get; }

    /// <exception cref="GateRunException">A build's proxy would not start; <see cref="GateRunException.Build"/> names it.</exception>
    public static async Task<GateSession> StartAsync(GateSettings settings, IReadOnlyList<GateBuild> builds, TextWriter log)
    {
        var tools = Tools.Find();
        var workDirectory = Directory.CreateTempSubdirectory("bench-gate-").FullName;
        List<BenchBackend> backends = [];
        List<(GateBuild, RunningArm[])> started = [];
        try
        {
            var backend = await BenchBackend.StartAsync(CompareProtocol.Http, settings.Backend, tools, workDirectory, log).ConfigureAwait(false);
            backends.Add(backend);
            var h2cBackend = settings.DirectArms.Contains(GateMetric.DirectH2) ? await BenchBackend.StartH2cAsync(workDirectory, log).ConfigureAwait(false) : null;
            if (h2cBackend is not null)
            {
                backends.Add(h2cBackend);
            }

            var environment = new ArmEnvironment(workDirectory, backend.EndPoint, CompareProtocol.Http, 1, tools, builds[0].Path);
            RunningArm[] directs = [.. settings.DirectArms.Select(name => new RunningArm(name, name == GateMetric.DirectH2 ? h2cBackend!.EndPoint : backend.EndPoint, []))];
            foreach (var build in builds)
            {
                List<RunningArm> proxies = [];
                started.Add((build, []));
                foreach (var arm in settings.ProxyArms)
                {
                    var http = arm == "forwarder-l7";
                    var name = $"{arm}-{build.Name}";
                    try
                    {
                        proxies.Add(arm switch
                        {
                            "forwarder-link" => await NodeLinkArm.StartAsync(environment, name, build.Path, build.Variables(http: false)).ConfigureAwait(false),
                            "forwarder-h2" => await ArmCatalog.StartForwarderH2Async(environment, h2cBackend!.EndPoint, name, build.Path, build.Variables(http: true)).ConfigureAwait(false),
                            _ => await ArmCatalog.StartForwarderAsync(environment, http, name, build.Path, build.Variables(http)).ConfigureAwait(false),
                        });
                    }
                    catch (InvalidOperationException ex)
                    {
                        throw new GateRunException($"the {build.Name} build's {arm} would not start: {ex.Message}", build.Name);
                    }
                    finally
                    {
                        started[^1] = (build, [.. proxies]);
                    }
                }
            }

            return new GateSession(settings, log, workDirectory, backends, directs, started, Compare.Versions.Of(tools, builds[^1].Path));
        }
        catch
        {
            await DisposeAllAsync(started, backends).ConfigureAwait(false);
            Directory.Delete(workDirectory, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// Runs unmeasured repetitions until the processes have settled: from a cold start the first
    /// repetitions drift by tens of percent, and a long continuous load does not settle them the
    /// way the repetitions' own rhythm does. A request failed here is logged, not fatal: a cold
    /// process's first request (JIT, the upstream's first connection) can outlast its 100 ms slice
    /// on a loaded machine, and a proxy that really fails fails the measured repetitions.
    /// </summary>
    public async Task WarmAsync(CancellationToken cancellationToken)
    {
        for (var rep = 1; rep <= _settings.WarmupReps; rep++)
        {
            await TryRunArmsAsync(rep, measured: false, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>One repetition of every build: each build's name to its direct arm's and its proxy arms' samples.</summary>
    public async Task<IReadOnlyDictionary<string, GateSample[]>> RunRepAsync(int rep, CancellationToken cancellationToken)
    {
        var samples = await RunArmsAsync(rep, cancellationToken).ConfigureAwait(false);
        foreach (var (build, figures) in samples)
        {
            await _log.WriteLineAsync(Describe(rep, build, figures)).ConfigureAwait(false);
        }

        return samples;
    }

    /// <summary>
    /// Measures every arm once; a repetition in which an arm completed nothing at all (and failed
    /// nothing, else it stopped already) is run again, at most <see cref="EmptyRetries"/> times:
    /// a hung proxy fails its requests, so silence is the load generator stalled on a saturated
    /// machine, not a verdict on a build.
    /// </summary>
    private async Task<Dictionary<string, GateSample[]>> RunArmsAsync(int rep, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var (samples, empty) = await TryRunArmsAsync(rep, measured: true, cancellationToken).ConfigureAwait(false);
            if (samples is not null)
            {
                return samples;
            }

            if (attempt == EmptyRetries)
            {
                throw new GateRunException($"{empty} completed no requests in repetition {rep}, {EmptyRetries + 1} times running: there is nothing to compare.");
            }

            await _log.WriteLineAsync($"  rep {rep}: {empty} completed no requests (the machine stalled?); running the repetition again").ConfigureAwait(false);
        }
    }

    /// <param name="measured">False for a warm-up repetition, whose failed requests are logged instead of stopping the run.</param>
    private async Task<(Dictionary<string, GateSample[]>? Samples, string? Empty)> TryRunArmsAsync(int rep, bool measured, CancellationToken cancellationToken)
    {
        // The direct arms first, then each build's proxies in the settings' order; names[i] is what arms[i] reports as.
        RunningArm[] arms = [.. _directs, .. _builds.SelectMany(b => b.Proxies)];
        string[] names = [.. _directs.Select(d => d.Name), .. _builds.SelectMany(_ => _settings.ProxyArms)];

        // Latency in short slices, the arms (and so the builds) taking turns, the order rotating
        // with the slice and the repetition: a burst of interference then lands in one slice of
        // each arm rather than in one arm's whole run, and no build always follows the other.
        var latency = arms.Select(_ => InvocationStats.NewHistogram()).ToArray();
        var slice = _settings.Duration / _settings.Slices;
        for (var s = 0; s < _settings.Slices; s++)
        {
            foreach (var i in Order(arms.Length, rep + s))
            {
                var stats = await ScenarioRunner.RunAsync(Scenario(arms[i], names[i], _settings.Connections, slice, TimeSpan.Zero, null), cancellationToken).ConfigureAwait(false);
                await CheckAsync(arms[i], stats, rep, measured).ConfigureAwait(false);
                latency[i].Add(stats.Latency);
            }
        }

        var throughput = new ScenarioStats[arms.Length];
        foreach (var i in Order(arms.Length, rep))
        {
            throughput[i] = await ScenarioRunner.RunAsync(Scenario(arms[i], names[i], _settings.MaxConnections, _settings.MaxDuration, _settings.Warmup, null), cancellationToken).ConfigureAwait(false);
            await CheckAsync(arms[i], throughput[i], rep, measured).ConfigureAwait(false);
        }

        var open = new ScenarioStats[arms.Length];
        foreach (var i in Order(arms.Length, rep + 1))
        {
            open[i] = await ScenarioRunner.RunAsync(Scenario(arms[i], names[i], GateSettings.OpenConnections, _settings.OpenDuration, TimeSpan.Zero, _settings.OpenRate), cancellationToken).ConfigureAwait(false);
            await CheckAsync(arms[i], open[i], rep, measured).ConfigureAwait(false);
        }

        var samples = new GateSample[arms.Length];
        for (var i = 0; i < arms.Length; i++)
        {
            var empty = latency[i].TotalCount == 0 ? "latency" : throughput[i].Completed == 0 ? "throughput" : open[i].Completed == 0 ? "open-loop" : null;
            if (empty is not null)
            {
                return (null, $"{arms[i].Name}'s {empty} run");
            }

            double? rss = i < _directs.Count ? null : ProcessSampler.Read(arms[i].Pids).RssBytes / (1024.0 * 1024);
            samples[i] = new GateSample(names[i], rep, InterpolatedPercentile.Of(latency[i], 50), InterpolatedPercentile.Of(latency[i], 99), throughput[i].RequestsPerSecond, InterpolatedPercentile.Of(open[i].Latency, 99), rss);
        }

        var perArm = _settings.ProxyArms.Count;
        return (_builds.Select((b, k) => (b.Build.Name, Samples: (GateSample[])[.. samples.Take(_directs.Count), .. samples.Skip(_directs.Count + (k * perArm)).Take(perArm)]))
            .ToDictionary(b => b.Name, b => b.Samples), null);
    }

    /// <summary>Every index once, starting at a point that moves with <paramref name="turn"/>.</summary>
    private static IEnumerable<int> Order(int count, int turn) => Enumerable.Range(0, count).Select(k => (k + turn) % count);

    /// <summary>Stops a measured repetition at the first failed request; failures include requests left unfinished when a run ended, so a hung proxy stops it too.</summary>
    private async Task CheckAsync(RunningArm arm, ScenarioStats stats, int rep, bool measured)
    {
        if (stats.Failed == 0)
        {
            return;
        }

        if (measured)
        {
            throw new GateRunException($"{arm.Name} failed {stats.Failed} requests in repetition {rep} ({stats.Problems}): a proxy that fails requests does not pass the gate.");
        }

        await _log.WriteLineAsync($"  warm-up {rep}: {arm.Name} failed {stats.Failed} requests ({stats.Problems}); not measured").ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var freezer in _freezers)
        {
            freezer.Dispose();
        }

        await DisposeAllAsync(_builds, _backends).ConfigureAwait(false);
        Directory.Delete(_workDirectory, recursive: true);
    }

    private static async Task DisposeAllAsync(IEnumerable<(GateBuild, RunningArm[] Proxies)> builds, IEnumerable<BenchBackend> backends)
    {
        foreach (var arm in builds.SelectMany(b => b.Proxies))
        {
            await arm.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var backend in backends)
        {
            await backend.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <param name="name">The arm's gate name: the HTTP/2 arm and its direct reference take h2c load, the rest HTTP/1.1.</param>
    private static Scenario Scenario(RunningArm arm, string name, int connections, TimeSpan duration, TimeSpan warmup, double? rate)
        => LoadCommand.CreateScenario(new LoadOptions(new Uri($"http://{arm.Entry}/"), null, 64, rate, null, connections, duration, warmup, 1, TimeSpan.FromSeconds(10), null, null, Http2: GateMetric.IsHttp2(name)));

    private static string Describe(int rep, string build, GateSample[] samples)
        => string.Create(CultureInfo.InvariantCulture, $"  rep {rep} {build}: ")
            + string.Join(" | ", samples.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Arm} p50 {s.P50Us:0.0}us p99 {s.P99Us:0.0}us {s.MaxRps / 1000:0.0}k req/s open p99 {s.OpenP99Us:0}us{(s.RssMiB is { } rss ? $" rss {rss:0.0}MiB" : string.Empty)}")));
}

/// <summary>The gate could not measure: an arm failed requests or a process would not start.</summary>
/// <param name="Build">The build whose proxy would not start; null when the failure was in a measurement.</param>
internal sealed class GateRunException(string message, string? build = null) : Exception(message)
{
    public string? Build { get; } = build;
}
