using System.Globalization;

namespace Forwarder.Bench.Histograms;

/// <summary>Number formatting that reproduces java.util.Formatter's "%.Nf" digits.</summary>
internal static class JavaNumberFormat
{
    // Beyond this decimal cannot hold the value; such magnitudes never reach the formats written here.
    private const double DecimalLimit = 7.9e28;

    /// <summary>
    /// Java rounds the shortest decimal representation of a double half-up (0.125 gives "0.13", 0.15 gives
    /// "0.2"), whereas .NET rounds the exact binary value (giving "0.12" and "0.1"). Log and .hgrm files
    /// must carry Java's digits, so this rounds the round-trip string in decimal arithmetic.
    /// </summary>
    public static string Fixed(double value, int decimals)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "Infinity" : "-Infinity";
        }

        string format = "F" + decimals.ToString(CultureInfo.InvariantCulture);
        if (Math.Abs(value) >= DecimalLimit)
        {
            return value.ToString(format, CultureInfo.InvariantCulture);
        }

        decimal shortest = decimal.Parse(
            value.ToString("R", CultureInfo.InvariantCulture), NumberStyles.Float, CultureInfo.InvariantCulture);
        return Math.Round(shortest, decimals, MidpointRounding.AwayFromZero).ToString(format, CultureInfo.InvariantCulture);
    }

    /// <summary>"%W.Nf": <see cref="Fixed"/> right-aligned in <paramref name="width"/> characters.</summary>
    public static string Fixed(double value, int decimals, int width) => Fixed(value, decimals).PadLeft(width);

    /// <summary>"%Wd".</summary>
    public static string Integer(long value, int width) => value.ToString(CultureInfo.InvariantCulture).PadLeft(width);
}
