namespace Forwarder.Bench.Scenarios;

/// <summary>
/// One phase of a scenario's load, run in order as in NBomber: inject invocations at a rate
/// (open loop: each has an intended start time and its latency counts from then, so a stalled
/// target shows up in the percentiles), or keep a number of copies running back to back (closed
/// loop), each either steady or ramping linearly from where the previous phase ended; or run a
/// fixed number of iterations.
/// </summary>
public abstract record LoadSimulation
{
    private protected LoadSimulation(TimeSpan during)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(during, TimeSpan.Zero);
        During = during;
    }

    /// <summary>How long the phase lasts (for an iteration count, the most it may take).</summary>
    public TimeSpan During { get; }

    /// <summary><paramref name="rate"/> invocations per <paramref name="interval"/>, evenly spaced, for <paramref name="during"/>.</summary>
    public static LoadSimulation Inject(double rate, TimeSpan interval, TimeSpan during) => new InjectSimulation(PerSecond(rate, interval), PerSecond(rate, interval), during);

    /// <summary>Injection whose rate moves linearly from the previous phase's rate (0 first) to <paramref name="rate"/>.</summary>
    public static LoadSimulation RampingInject(double rate, TimeSpan interval, TimeSpan during) => new RampingInjectSimulation(PerSecond(rate, interval), during);

    /// <summary>
    /// Injection at a rate drawn afresh for each <paramref name="interval"/>, uniformly between
    /// <paramref name="minRate"/> and <paramref name="maxRate"/> invocations per interval, for <paramref name="during"/>.
    /// </summary>
    public static LoadSimulation InjectRandom(double minRate, double maxRate, TimeSpan interval, TimeSpan during)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRate, minRate);
        return new RandomInjectSimulation(PerSecond(minRate, interval), PerSecond(maxRate, interval), interval, during);
    }

    /// <summary><paramref name="copies"/> copies each running the scenario again as soon as it finishes.</summary>
    public static LoadSimulation KeepConstant(int copies, TimeSpan during) => new ClosedSimulation(copies, copies, during);

    /// <summary>Copies moving linearly from the previous phase's count (0 first) to <paramref name="copies"/>.</summary>
    public static LoadSimulation RampingConstant(int copies, TimeSpan during) => new RampingClosedSimulation(copies, during);

    /// <summary>
    /// <paramref name="copies"/> copies running back to back until <paramref name="iterations"/>
    /// invocations (all copies together) are done, or <paramref name="maxDuration"/> (an hour unless
    /// given) has passed. It must be the last simulation; the measured time is what the run took.
    /// </summary>
    public static LoadSimulation IterationsForConstant(int copies, long iterations, TimeSpan? maxDuration = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(copies, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        return new IterationsSimulation(copies, iterations, maxDuration ?? TimeSpan.FromHours(1));
    }

    /// <summary>No load for <paramref name="during"/>.</summary>
    public static LoadSimulation Pause(TimeSpan during) => new InjectSimulation(0, 0, during);

    private static double PerSecond(double rate, TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rate);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        return rate / interval.TotalSeconds;
    }
}

/// <summary>Open loop from <paramref name="FromPerSecond"/> to <paramref name="ToPerSecond"/> invocations a second.</summary>
internal sealed record InjectSimulation(double FromPerSecond, double ToPerSecond, TimeSpan During) : LoadSimulation(During);

/// <summary>Open loop ramping from wherever the previous phase ended; resolved into an <see cref="InjectSimulation"/> when the plan is made.</summary>
internal sealed record RampingInjectSimulation(double ToPerSecond, TimeSpan During) : LoadSimulation(During);

/// <summary>Open loop at a random rate per interval; resolved into one <see cref="InjectSimulation"/> per interval.</summary>
internal sealed record RandomInjectSimulation(double MinPerSecond, double MaxPerSecond, TimeSpan Interval, TimeSpan During) : LoadSimulation(During);

/// <summary>Closed loop from <paramref name="FromCopies"/> to <paramref name="ToCopies"/> copies.</summary>
internal sealed record ClosedSimulation(int FromCopies, int ToCopies, TimeSpan During) : LoadSimulation(During);

/// <summary>Closed loop ramping from wherever the previous phase ended; resolved into a <see cref="ClosedSimulation"/>.</summary>
internal sealed record RampingClosedSimulation(int ToCopies, TimeSpan During) : LoadSimulation(During);

/// <summary>Closed loop of <paramref name="Copies"/> until <paramref name="Iterations"/> invocations are done, within <paramref name="During"/>.</summary>
internal sealed record IterationsSimulation(int Copies, long Iterations, TimeSpan During) : LoadSimulation(During);
