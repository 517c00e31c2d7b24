namespace Forwarder.Bench.Scenarios;

/// <summary>
/// A load test in the NBomber style: a function that performs one invocation (a request, a
/// conversation of several steps), how much load to put on it over time, and the thresholds that
/// fail the run. Immutable: each <c>With</c> returns a changed copy.
/// </summary>
/// <example>
/// <code>
/// var scenario = Scenario.Create("hello", async ctx => { ...; return Response.Ok(200, bytes); })
///     .WithInit(ctx => { ctx.State = new Connection(); return default; })
///     .WithLoadSimulations(LoadSimulation.Inject(1000, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30)))
///     .WithThresholds(Threshold.LatencyBelow(99, TimeSpan.FromMilliseconds(5)), Threshold.ErrorRateBelow(0.001));
/// var stats = await ScenarioRunner.RunAsync(scenario);
/// </code>
/// </example>
public sealed record Scenario
{
    private TimeSpan? _gracePeriod;

    private Scenario(string name, Func<ScenarioContext, ValueTask<Response>> run)
    {
        Name = name;
        Run = run;
    }

    /// <summary>Names the scenario in reports.</summary>
    public string Name { get; }

    /// <summary>One invocation: what a worker runs each time the load asks for one.</summary>
    public Func<ScenarioContext, ValueTask<Response>> Run { get; }

    /// <summary>Runs once per worker before the load starts (open a connection into <see cref="ScenarioContext.State"/>).</summary>
    public Func<ScenarioContext, ValueTask>? Init { get; private init; }

    /// <summary>Runs once per worker after the load ends.</summary>
    public Func<ScenarioContext, ValueTask>? Clean { get; private init; }

    /// <summary>The load phases, run in order; one copy for ten seconds unless set.</summary>
    public IReadOnlyList<LoadSimulation> Simulations { get; private init; } = [LoadSimulation.KeepConstant(1, TimeSpan.FromSeconds(10))];

    /// <summary>Load like the first simulation's start, run before measuring and not counted.</summary>
    public TimeSpan WarmUp { get; private init; }

    /// <summary>Conditions checked at each reporting interval (a break aborts the run) and at the end.</summary>
    public IReadOnlyList<Threshold> Thresholds { get; private init; } = [];

    /// <summary>How often the stats so far are taken, the thresholds checked and, with <see cref="LiveOutput"/>, a line printed; a second unless set.</summary>
    public TimeSpan ReportingInterval { get; private init; } = TimeSpan.FromSeconds(1);

    /// <summary>Where the live line goes at each reporting interval; nowhere unless set.</summary>
    public TextWriter? LiveOutput { get; private init; }

    /// <summary>Hands over each reporting interval's corrected latency while the run goes; null when not asked for.</summary>
    internal LatencyIntervals? Intervals { get; private init; }

    /// <summary>Workers (each with its own context and state) that take injected invocations; when all are busy, invocations queue and their latency grows.</summary>
    public int MaxConcurrency { get; private init; } = 64;

    /// <summary>An invocation running longer is aborted (through <see cref="ScenarioContext.OnTimeout"/>) and counted as a timeout.</summary>
    public TimeSpan Timeout { get; private init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the run waits past its last phase for invocations still due or in flight; then it
    /// stops waiting (a hung invocation cannot hold it longer) and counts what is left as
    /// unfinished. Unless set, the timeout, at most <see cref="DefaultGracePeriod"/>.
    /// </summary>
    public TimeSpan GracePeriod => _gracePeriod ?? (Timeout < DefaultGracePeriod ? Timeout : DefaultGracePeriod);

    /// <summary>The longest grace period unless one is set.</summary>
    public static TimeSpan DefaultGracePeriod { get; } = TimeSpan.FromSeconds(2);

    /// <summary>A scenario named <paramref name="name"/> that runs <paramref name="run"/> for each invocation.</summary>
    public static Scenario Create(string name, Func<ScenarioContext, ValueTask<Response>> run)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new Scenario(name, run);
    }

    /// <summary>Sets <see cref="Init"/>.</summary>
    public Scenario WithInit(Func<ScenarioContext, ValueTask> init) => this with { Init = init };

    /// <summary>Sets <see cref="Clean"/>.</summary>
    public Scenario WithClean(Func<ScenarioContext, ValueTask> clean) => this with { Clean = clean };

    /// <summary>Sets <see cref="Simulations"/>; an iteration count can only come last.</summary>
    public Scenario WithLoadSimulations(params LoadSimulation[] simulations)
    {
        ArgumentOutOfRangeException.ThrowIfZero(simulations.Length);
        if (simulations[..^1].OfType<IterationsSimulation>().Any())
        {
            throw new ArgumentException($"Scenario '{Name}': IterationsForConstant must be the last simulation, since when it ends is not known in advance.", nameof(simulations));
        }

        return this with { Simulations = simulations };
    }

    /// <summary>Sets <see cref="WarmUp"/>.</summary>
    public Scenario WithWarmUpDuration(TimeSpan warmUp) => this with { WarmUp = warmUp };

    /// <summary>No warm-up (the default).</summary>
    public Scenario WithoutWarmUp() => this with { WarmUp = TimeSpan.Zero };

    /// <summary>Sets <see cref="Thresholds"/>.</summary>
    public Scenario WithThresholds(params Threshold[] thresholds) => this with { Thresholds = thresholds };

    /// <summary>Sets <see cref="ReportingInterval"/> and, if given, <see cref="LiveOutput"/>.</summary>
    public Scenario WithReportingInterval(TimeSpan interval, TextWriter? liveOutput = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        return this with { ReportingInterval = interval, LiveOutput = liveOutput };
    }

    /// <summary>Hands each interval's corrected latency to <paramref name="report"/> while the run goes (bench load --hlog).</summary>
    internal Scenario WithLatencyIntervals(TimeSpan every, Action<LatencyInterval> report)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(every, TimeSpan.Zero);
        return this with { Intervals = new LatencyIntervals(every, report) };
    }

    /// <summary>Sets <see cref="MaxConcurrency"/>.</summary>
    public Scenario WithMaxConcurrency(int workers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        return this with { MaxConcurrency = workers };
    }

    /// <summary>Sets <see cref="Timeout"/>.</summary>
    public Scenario WithTimeout(TimeSpan timeout) => this with { Timeout = timeout };

    /// <summary>Sets <see cref="GracePeriod"/>.</summary>
    public Scenario WithGracePeriod(TimeSpan grace)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(grace, TimeSpan.Zero);
        return this with { _gracePeriod = grace };
    }
}
