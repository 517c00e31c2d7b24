namespace Forwarder.LoadBalancing.Health;

/// <summary>What active health checks last concluded about an endpoint.</summary>
public enum HealthCheckState
{
    /// <summary>Not checked yet: a new endpoint takes traffic only after its first passing check.</summary>
    Unknown,
    Healthy,
    Unhealthy,
}

/// <summary>
/// The health of one endpoint: its active-check state and its passive (outlier) ejection.
/// Kept across reloads for as long as the endpoint stays in its service; <see cref="ServiceHealth"/>
/// makes every transition.
/// </summary>
public sealed class EndpointHealth
{
    private volatile HealthCheckState _check;
    private int _consecutiveFailures;
    private long _ejectedUntilTicks;
    private long _ejections;
    private long _checksPassed;
    private long _checksFailed;

    internal EndpointHealth(string id) => Id = id;

    public string Id { get; }

    public HealthCheckState Check
    {
        get => _check;
        internal set => _check = value;
    }

    /// <summary>Results in a row that agree with the latest: positive for passes, negative for failures.</summary>
    internal int CheckStreak { get; set; }

    /// <summary>Why the latest check failed; null after a pass.</summary>
    public string? LastCheckFailure { get; internal set; }

    public long ChecksPassed => Volatile.Read(ref _checksPassed);

    public long ChecksFailed => Volatile.Read(ref _checksFailed);

    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    public bool Ejected => Volatile.Read(ref _ejectedUntilTicks) != 0;

    /// <summary>When the current ejection ends; null when the endpoint is not ejected.</summary>
    public DateTimeOffset? EjectedUntil
        => Volatile.Read(ref _ejectedUntilTicks) is var ticks and not 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    /// <summary>Ejections since the endpoint was added.</summary>
    public long Ejections => Volatile.Read(ref _ejections);

    /// <summary>Recent ejections: the multiplier of the next ejection's length; decays after a quiet spell.</summary>
    internal int EjectionMultiplier { get; set; }

    internal DateTimeOffset ReturnedAt { get; set; } = DateTimeOffset.MinValue;

    internal ITimer? ReturnTimer { get; set; }

    /// <summary>Whether the endpoint may take traffic: not ejected and, when active checks run, passing them.</summary>
    public bool IsAvailable(bool activeChecks) => !Ejected && (!activeChecks || Check == HealthCheckState.Healthy);

    internal void CountCheck(bool passed) => Interlocked.Increment(ref passed ? ref _checksPassed : ref _checksFailed);

    internal int CountFailure() => Interlocked.Increment(ref _consecutiveFailures);

    internal void ClearFailures()
    {
        // Read first: a success on every request must not write a shared cache line.
        if (Volatile.Read(ref _consecutiveFailures) != 0)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }
    }

    internal void Eject(DateTimeOffset until)
    {
        Volatile.Write(ref _ejectedUntilTicks, until.UtcTicks);
        Interlocked.Increment(ref _ejections);
    }

    internal void Return() => Volatile.Write(ref _ejectedUntilTicks, 0);
}
