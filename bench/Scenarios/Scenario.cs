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
internal sealed record Scenario
{
    private TimeSpan? _gracePeriod;

    private Scenario(string name, Func<ScenarioContext, ValueTask<Response>> run)
    {
        Name = name;
        Run = run;
    }

    public string Name { get; }

    public Func<ScenarioContext, ValueTask<Response>> Run { get; }

    /// <summary>Runs once per worker before the load starts (open a connection into <see cref="ScenarioContext.State"/>).</summary>
    public Func<ScenarioContext, ValueTask>? Init { get; private init; }

    /// <summary>Runs once per worker after the load ends.</summary>
    public Func<ScenarioContext, ValueTask>? Clean { get; private init; }

    public IReadOnlyList<LoadSimulation> Simulations { get; private init; } = [LoadSimulation.KeepConstant(1, TimeSpan.FromSeconds(10))];

    /// <summary>Load like the first simulation's start, run before measuring and not counted.</summary>
    public TimeSpan WarmUp { get; private init; }

    public IReadOnlyList<Threshold> Thresholds { get; private init; } = [];

    /// <summary>Hands over each reporting interval's corrected latency while the run goes; null when not asked for.</summary>
    public LatencyIntervals? Intervals { get; private init; }

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

    public static TimeSpan DefaultGracePeriod { get; } = TimeSpan.FromSeconds(2);

    public static Scenario Create(string name, Func<ScenarioContext, ValueTask<Response>> run)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new Scenario(name, run);
    }

    public Scenario WithInit(Func<ScenarioContext, ValueTask> init) => this with { Init = init };

    public Scenario WithClean(Func<ScenarioContext, ValueTask> clean) => this with { Clean = clean };

    public Scenario WithLoadSimulations(params LoadSimulation[] simulations)
    {
        ArgumentOutOfRangeException.ThrowIfZero(simulations.Length);
        return this with { Simulations = simulations };
    }

    public Scenario WithWarmUpDuration(TimeSpan warmUp) => this with { WarmUp = warmUp };

    public Scenario WithoutWarmUp() => this with { WarmUp = TimeSpan.Zero };

    public Scenario WithThresholds(params Threshold[] thresholds) => this with { Thresholds = thresholds };

    public Scenario WithLatencyIntervals(TimeSpan every, Action<LatencyInterval> report)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(every, TimeSpan.Zero);
        return this with { Intervals = new LatencyIntervals(every, report) };
    }

    public Scenario WithMaxConcurrency(int workers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        return this with { MaxConcurrency = workers };
    }

    public Scenario WithTimeout(TimeSpan timeout) => this with { Timeout = timeout };

    public Scenario WithGracePeriod(TimeSpan grace)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(grace, TimeSpan.Zero);
        return this with { _gracePeriod = grace };
    }
}
