namespace Forwarder.LoadBalancing;

/// <summary>Sizes of the consistent-hash structures.</summary>
/// <param name="MinRingSize">Ring points at least (ring_hash); Envoy's default 1024.</param>
/// <param name="MaxRingSize">Ring points at most (ring_hash); Envoy's default 8M.</param>
/// <param name="TableSize">Maglev lookup table size, a prime; Envoy's default 65537.</param>
/// <param name="BalanceFactor">
/// Bounded load, in percent of the average in-flight work (weighted): 125 means no endpoint takes
/// more than 1.25 times its share; a key whose endpoint is full goes to the next one on the ring
/// or in the table. 0 turns the bound off.
/// </param>
public sealed record HashingOptions(int MinRingSize = 1024, int MaxRingSize = 8 * 1024 * 1024, int TableSize = 65537, int BalanceFactor = 0)
{
    public static HashingOptions Default { get; } = new();

    public static bool IsPrime(int value)
    {
        if (value < 2)
        {
            return false;
        }

        for (var divisor = 2; (long)divisor * divisor <= value; divisor++)
        {
            if (value % divisor == 0)
            {
                return false;
            }
        }

        return true;
    }
}
