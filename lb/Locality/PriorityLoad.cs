namespace Forwarder.LoadBalancing.Locality;

/// <summary>
/// Envoy's priority-level arithmetic: how much of a service's traffic each priority level gets
/// from how many of its endpoints are available. A level's health is its available share times
/// the overprovisioning factor, capped at 100%; level 0 takes its health's worth of traffic and
/// the rest spills to level 1, and so on. When the levels' health adds up to less than 100%,
/// the loads are scaled up to fill it.
/// </summary>
/// <remarks>
/// Panic is per level, as in Envoy: only while the total health is below 100% does a level with
/// fewer than <c>panicThreshold</c> percent of its endpoints available send its share to all of
/// them. When every level is in panic, traffic goes to levels in proportion to their sizes.
/// </remarks>
public static class PriorityLoad
{
    /// <summary>Envoy's default overprovisioning factor, 1.4, as a percentage.</summary>
    public const int DefaultOverprovisioningFactor = 140;

    /// <summary>Levels a service's endpoints may be sorted into; more are refused.</summary>
    public const int MaxLevels = 8;

    /// <summary>Integer percent units, as Envoy's priority load.</summary>
    public const int Total = 100;

    /// <param name="sizes">Endpoints per level.</param>
    /// <param name="available">Available endpoints per level.</param>
    /// <param name="overprovisioningFactor">Percent: 140 counts a level with 72% of its endpoints available as fully healthy.</param>
    /// <param name="panicThreshold">Percent of a level's endpoints below which it panics; 0 for never.</param>
    /// <param name="load">Receives each level's percent of the traffic; all 0 when nothing can take any.</param>
    /// <param name="panic">Receives whether each level sends its share to all its endpoints.</param>
    public static void Compute(ReadOnlySpan<int> sizes, ReadOnlySpan<int> available, int overprovisioningFactor, int panicThreshold, Span<int> load, Span<bool> panic)
    {
        var levels = sizes.Length;
        load[..levels].Clear();
        panic[..levels].Clear();
        Span<int> health = stackalloc int[levels];
        int totalHealth = 0, endpoints = 0;
        for (var i = 0; i < levels; i++)
        {
            health[i] = sizes[i] == 0 ? 0 : (int)Math.Min(Total, (long)available[i] * overprovisioningFactor / sizes[i]);
            totalHealth += health[i];
            endpoints += sizes[i];
        }

        totalHealth = Math.Min(Total, totalHealth);
        var allPanic = endpoints > 0;
        for (var i = 0; i < levels; i++)
        {
            panic[i] = sizes[i] > 0 && panicThreshold > 0 && totalHealth < Total && available[i] * 100L < (long)panicThreshold * sizes[i];
            allPanic &= sizes[i] == 0 || panic[i];
        }

        if (allPanic)
        {
            // Nothing healthy enough anywhere: spread by size, like one big level in panic.
            Distribute(sizes, endpoints, load);
            return;
        }

        if (totalHealth == 0)
        {
            return;
        }

        Distribute(health, totalHealth, load);
    }

    /// <summary>Each level's weight scaled to <see cref="Total"/>, cascading, with rounding leftovers to the first level that has any weight.</summary>
    private static void Distribute(ReadOnlySpan<int> weights, int sum, Span<int> load)
    {
        var remaining = Total;
        var first = -1;
        for (var i = 0; i < weights.Length; i++)
        {
            load[i] = (int)Math.Min(remaining, (long)weights[i] * Total / sum);
            remaining -= load[i];
            if (first < 0 && weights[i] > 0)
            {
                first = i;
            }
        }

        load[first] += remaining;
    }
}
