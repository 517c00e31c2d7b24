using System.Diagnostics;

namespace Forwarder.Bench.Scenarios;

/// <summary>
/// A scenario's simulations laid out on the clock: warm-up first, then each phase in order, with
/// ramps resolved against the phase before. Timestamps are Stopwatch ticks, fixed by <see cref="Start"/>.
/// </summary>
internal sealed class LoadPlan
{
    private LoadPlan(IReadOnlyList<LoadPhase> phases, TimeSpan warmUp, int workers)
    {
        Phases = phases;
        WarmUp = warmUp;
        Workers = workers;
    }

    public IReadOnlyList<LoadPhase> Phases { get; }

    public TimeSpan WarmUp { get; }

    /// <summary>Workers the run needs: the most copies any closed phase keeps, or the concurrency allowed for injection.</summary>
    public int Workers { get; }

    /// <summary>Measured time: everything after the warm-up.</summary>
    public TimeSpan Measured => Phases.Count == 0 ? TimeSpan.Zero : Phases[^1].EndOffset - WarmUp;

    /// <summary>The last phase runs a number of iterations: the run ends when they are done, its measured time is what it took.</summary>
    public bool CountsIterations => Phases.Count > 0 && Phases[^1].Simulation is IterationsSimulation;

    public long MeasureStart { get; private set; }

    public long End { get; private set; }

    /// <summary>Invocations a second the measured open-loop phases ask for on average; null when all are closed loop.</summary>
    public double? RequestedRate
    {
        get
        {
            var open = Phases.Where(p => p.StartOffset >= WarmUp && p.Simulation is InjectSimulation).ToArray();
            if (open.Length == 0 || Phases.Any(p => p.StartOffset >= WarmUp && p.Simulation is not InjectSimulation))
            {
                return null;
            }

            return open.Sum(p => p.PlannedInvocations) / Measured.TotalSeconds;
        }
    }

    public static LoadPlan Create(Scenario scenario)
    {
        List<LoadSimulation> resolved = [];
        double lastRate = 0;
        var lastCopies = 0;
        foreach (var phase in scenario.Simulations.SelectMany(Expand))
        {
            LoadSimulation simulation = phase switch
            {
                RampingInjectSimulation ramp => new InjectSimulation(lastRate, ramp.ToPerSecond, ramp.During),
                RampingClosedSimulation ramp => new ClosedSimulation(lastCopies, ramp.ToCopies, ramp.During),
                _ => phase,
            };
            (lastRate, lastCopies) = simulation switch
            {
                InjectSimulation inject => (inject.ToPerSecond, 0),
                ClosedSimulation closed => (0, closed.ToCopies),
                IterationsSimulation iterations => (0, iterations.Copies),
                _ => (lastRate, lastCopies),
            };
            resolved.Add(simulation);
        }

        if (scenario.WarmUp > TimeSpan.Zero)
        {
            // Warm up at the load the first phase starts with (or ramps towards, if it starts from nothing).
            resolved.Insert(0, resolved[0] switch
            {
                InjectSimulation inject => new InjectSimulation(Math.Max(inject.FromPerSecond, inject.ToPerSecond), Math.Max(inject.FromPerSecond, inject.ToPerSecond), scenario.WarmUp),
                ClosedSimulation closed => new ClosedSimulation(Math.Max(closed.FromCopies, closed.ToCopies), Math.Max(closed.FromCopies, closed.ToCopies), scenario.WarmUp),
                IterationsSimulation iterations => new ClosedSimulation(iterations.Copies, iterations.Copies, scenario.WarmUp),
                var other => other,
            });
        }

        List<LoadPhase> phases = [];
        var offset = TimeSpan.Zero;
        foreach (var simulation in resolved)
        {
            phases.Add(new LoadPhase(simulation, offset));
            offset += simulation.During;
        }

        var copies = resolved.OfType<ClosedSimulation>().Select(c => Math.Max(c.FromCopies, c.ToCopies))
            .Concat(resolved.OfType<IterationsSimulation>().Select(i => i.Copies)).DefaultIfEmpty(0).Max();
        var workers = Math.Max(copies, resolved.OfType<InjectSimulation>().Any() ? scenario.MaxConcurrency : 0);
        return new LoadPlan(phases, scenario.WarmUp, Math.Max(1, workers));
    }

    /// <summary>A random-rate injection becomes one steady phase per interval (the last one shorter if the interval does not divide its length).</summary>
    private static IEnumerable<LoadSimulation> Expand(LoadSimulation simulation)
    {
        if (simulation is not RandomInjectSimulation random)
        {
            yield return simulation;
            yield break;
        }

        for (var offset = TimeSpan.Zero; offset < random.During; offset += random.Interval)
        {
            var rate = random.MinPerSecond + (Random.Shared.NextDouble() * (random.MaxPerSecond - random.MinPerSecond));
            var length = random.During - offset < random.Interval ? random.During - offset : random.Interval;
            yield return new InjectSimulation(rate, rate, length);
        }
    }

    /// <summary>Fixes the plan on the clock with its first phase starting at <paramref name="start"/>.</summary>
    public void Start(long start)
    {
        foreach (var phase in Phases)
        {
            phase.Start(start);
        }

        MeasureStart = start + ToTicks(WarmUp);
        End = Phases.Count == 0 ? start : Phases[^1].End;
    }

    public static long ToTicks(TimeSpan time) => (long)(time.TotalSeconds * Stopwatch.Frequency);
}

/// <summary>
/// One phase on the clock. Open loop hands out tickets, each the intended start of one
/// invocation; closed loop says how many copies should be running at a given moment.
/// </summary>
internal sealed class LoadPhase(LoadSimulation simulation, TimeSpan startOffset)
{
    private long _nextTicket = -1;

    public LoadSimulation Simulation { get; } = simulation;

    public TimeSpan StartOffset { get; } = startOffset;

    public TimeSpan EndOffset => StartOffset + Simulation.During;

    public long Begin { get; private set; }

    public long End { get; private set; }

    public bool IsOpenLoop => Simulation is InjectSimulation;

    /// <summary>Invocations an open-loop phase asks for over its whole length, or an iteration count's iterations.</summary>
    public long PlannedInvocations => Simulation switch
    {
        InjectSimulation inject => (long)Math.Ceiling(Integral(inject, Simulation.During.TotalSeconds) - 1e-9),
        IterationsSimulation iterations => iterations.Iterations,
        _ => 0,
    };

    public void Start(long start)
    {
        Begin = start + LoadPlan.ToTicks(StartOffset);
        End = start + LoadPlan.ToTicks(EndOffset);
    }

    /// <summary>
    /// Takes the next open-loop ticket (or iteration, intended now); false once the phase has
    /// handed out all of them.
    /// </summary>
    public bool TryTakeTicket(out long intended)
    {
        var ticket = Interlocked.Increment(ref _nextTicket);
        if (ticket >= PlannedInvocations)
        {
            intended = 0;
            return false;
        }

        intended = IsOpenLoop ? IntendedStartOf(ticket) : Stopwatch.GetTimestamp();
        return true;
    }

    /// <summary>Ends an open-loop phase's hand-out: the tickets nobody took are <c>[First, End)</c>, for the runner to count.</summary>
    public (long First, long End) TakeRemainingTickets()
    {
        if (!IsOpenLoop)
        {
            return (0, 0);
        }

        var planned = PlannedInvocations;
        var lastTaken = Interlocked.Exchange(ref _nextTicket, planned);
        return (Math.Min(lastTaken + 1, planned), planned);
    }

    /// <summary>The Stopwatch timestamp at which open-loop ticket <paramref name="ticket"/> is due.</summary>
    public long IntendedStartOf(long ticket)
        => Begin + (long)(TimeOfTicket((InjectSimulation)Simulation, ticket, Simulation.During.TotalSeconds) * Stopwatch.Frequency);

    /// <summary>Copies a closed-loop phase keeps running at <paramref name="now"/>.</summary>
    public int CopiesAt(long now)
    {
        var closed = (ClosedSimulation)Simulation;
        var progress = Math.Clamp((now - Begin) / (double)Math.Max(1, End - Begin), 0, 1);
        return (int)Math.Round(closed.FromCopies + ((closed.ToCopies - closed.FromCopies) * progress));
    }

    /// <summary>Invocations due by <paramref name="seconds"/> into the phase: the integral of a linear rate.</summary>
    private static double Integral(InjectSimulation inject, double seconds)
    {
        var during = inject.During.TotalSeconds;
        return (inject.FromPerSecond * seconds) + ((inject.ToPerSecond - inject.FromPerSecond) * seconds * seconds / (2 * during));
    }

    /// <summary>When the integral reaches <paramref name="ticket"/>: the root of a·t² + b·t − n = 0.</summary>
    private static double TimeOfTicket(InjectSimulation inject, long ticket, double during)
    {
        var a = (inject.ToPerSecond - inject.FromPerSecond) / (2 * during);
        var b = inject.FromPerSecond;
        if (Math.Abs(a) < 1e-12)
        {
            return ticket / b;
        }

        return (-b + Math.Sqrt((b * b) + (4 * a * ticket))) / (2 * a);
    }
}
