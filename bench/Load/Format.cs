using System.Globalization;

namespace Forwarder.Bench.Load;

/// <summary>Numbers the way wrk prints them.</summary>
internal static class Format
{
    public static string Duration(TimeSpan time) => time.TotalSeconds switch
    {
        0 => "0s",
        < 1 => string.Create(CultureInfo.InvariantCulture, $"{time.TotalMilliseconds:0.##}ms"),
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{time.TotalSeconds:0.##}s"),
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{time.TotalMinutes:0.##}m"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{time.TotalHours:0.##}h"),
    };

    /// <summary>A latency given in microseconds, in the unit that reads best.</summary>
    public static string Latency(double microseconds) => microseconds switch
    {
        < 1000 => string.Create(CultureInfo.InvariantCulture, $"{microseconds:0.#}us"),
        < 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1000:0.00}ms"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1_000_000:0.00}s"),
    };

    public static string Bytes(double bytes) => bytes switch
    {
        < 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes:0}B"),
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024:0.00}KB"),
        < 1024 * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024 * 1024):0.00}MB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024 * 1024 * 1024):0.00}GB"),
    };
}
