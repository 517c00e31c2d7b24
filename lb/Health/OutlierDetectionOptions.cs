namespace Forwarder.LoadBalancing.Health;

/// <summary>
/// Passive health: an endpoint that fails <see cref="ConsecutiveFailures"/> times in a row on
/// real traffic is ejected for <see cref="BaseEjectionTime"/> times the number of times it has
/// been ejected recently, at most <see cref="MaxEjectionTime"/>, as in Envoy's outlier detection.
/// </summary>
/// <param name="MaxEjectionPercent">
/// At most this share of the service's endpoints is ejected at once (but one always may be), so a
/// failure that hits every endpoint cannot eject them all.
/// </param>
public sealed record OutlierDetectionOptions(
    int ConsecutiveFailures,
    TimeSpan BaseEjectionTime,
    TimeSpan MaxEjectionTime,
    int MaxEjectionPercent)
{
    /// <summary>Envoy's defaults: 5 failures, 30 s base, 300 s cap, 10%.</summary>
    public static OutlierDetectionOptions Default { get; } = new(5, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(300), 10);

    /// <summary>How long the <paramref name="ejection"/>th recent ejection lasts.</summary>
    public TimeSpan EjectionTime(int ejection)
    {
        var cap = MaxEjectionTime > BaseEjectionTime ? MaxEjectionTime : BaseEjectionTime;
        var time = BaseEjectionTime * ejection;
        return time < cap ? time : cap;
    }

    /// <summary>How many of <paramref name="endpoints"/> may be ejected at the same time.</summary>
    public int MaxEjected(int endpoints) => Math.Max(1, endpoints * MaxEjectionPercent / 100);
}
