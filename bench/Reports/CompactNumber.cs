using System.Globalization;

namespace Forwarder.Bench.Reports;

/// <summary>Numbers for chart labels: three significant digits with a k/M/G suffix, e.g. 0.851, 15.4k, 2.5M.</summary>
internal static class CompactNumber
{
    private const int SignificantDigits = 3;

    public static string Format(double value)
    {
        if (!double.IsFinite(value))
        {
            return "n/a";
        }

        // Rounding before picking the suffix makes 999.6 read "1k" rather than "1000".
        double rounded = RoundToSignificant(value, SignificantDigits);
        (double scaled, string suffix) = Math.Abs(rounded) switch
        {
            >= 1e9 => (rounded / 1e9, "G"),
            >= 1e6 => (rounded / 1e6, "M"),
            >= 1e3 => (rounded / 1e3, "k"),
            _ => (rounded, ""),
        };
        return scaled.ToString("0.##########", CultureInfo.InvariantCulture) + suffix;
    }

    private static double RoundToSignificant(double value, int digits)
    {
        if (value == 0)
        {
            return 0;
        }

        int decimals = digits - 1 - (int)Math.Floor(Math.Log10(Math.Abs(value)));
        if (decimals >= 0)
        {
            return Math.Round(value, Math.Min(decimals, 15), MidpointRounding.AwayFromZero);
        }

        double unit = Math.Pow(10, -decimals);
        return Math.Round(value / unit, MidpointRounding.AwayFromZero) * unit;
    }
}
