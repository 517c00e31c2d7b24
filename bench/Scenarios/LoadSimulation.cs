namespace Forwarder.Bench.Scenarios;

/// <summary>
/// One phase of a scenario's load, run in order as in NBomber: inject invocations at a rate
/// (open loop: each has an intended start time and its latency counts from then, so a stalled
/// target shows up in the percentiles), or keep a number of copies running back to back (closed
/// loop), each either steady or ramping linearly from where the previous phase ended.
/// </summary>
internal abstract record LoadSimulation(TimeSpan During)
{
    /// <summary><paramref name="rate"/> invocations per <paramref name="interval"/>, evenly spaced, for <paramref name="during"/>.</summary>
    public static LoadSimulation Inject(double rate, TimeSpan interval, TimeSpan during) => new InjectSimulation(PerSecond(rate, interval), PerSecond(rate, interval), during);

    /// <summary>Injection whose rate moves linearly from the previous phase's rate (0 first) to <paramref name="rate"/>.</summary>
    public static LoadSimulation RampingInject(double rate, TimeSpan interval, TimeSpan during) => new RampingInjectSimulation(PerSecond(rate, interval), during);

    /// <summary><paramref name="copies"/> copies each running the scenario again as soon as it finishes.</summary>
    public static LoadSimulation KeepConstant(int copies, TimeSpan during) => new ClosedSimulation(copies, copies, during);

    /// <summary>Copies moving linearly from the previous phase's count (0 first) to <paramref name="copies"/>.</summary>
    public static LoadSimulation RampingConstant(int copies, TimeSpan during) => new RampingClosedSimulation(copies, during);

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

/// <summary>Closed loop from <paramref name="FromCopies"/> to <paramref name="ToCopies"/> copies.</summary>
internal sealed record ClosedSimulation(int FromCopies, int ToCopies, TimeSpan During) : LoadSimulation(During);

/// <summary>Closed loop ramping from wherever the previous phase ended; resolved into a <see cref="ClosedSimulation"/>.</summary>
internal sealed record RampingClosedSimulation(int ToCopies, TimeSpan During) : LoadSimulation(During);
