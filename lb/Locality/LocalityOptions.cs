namespace Forwarder.LoadBalancing.Locality;

/// <summary>
/// How a service's endpoints sort into priority levels by where they run (0: this node,
/// 1: this zone, 2: elsewhere, or whatever levels the caller chose) and how early traffic
/// spills from one level to the next.
/// </summary>
/// <param name="Levels">Each endpoint's level, index for index with the balancer's endpoints; below <see cref="PriorityLoad.MaxLevels"/>.</param>
/// <param name="OverprovisioningFactor">Percent; see <see cref="PriorityLoad"/>.</param>
/// <param name="Picks">Counts picks per level; kept by the caller across rebuilds and reloads.</param>
public sealed record LocalityOptions(IReadOnlyList<int> Levels, int OverprovisioningFactor = PriorityLoad.DefaultOverprovisioningFactor, LevelPicks? Picks = null);

/// <summary>Picks per priority level, as a metric: how much traffic stayed local.</summary>
public sealed class LevelPicks
{
    private readonly long[] _counts = new long[PriorityLoad.MaxLevels];

    public long this[int level] => Volatile.Read(ref _counts[level]);

    internal void Count(int level) => Interlocked.Increment(ref _counts[level]);
}
