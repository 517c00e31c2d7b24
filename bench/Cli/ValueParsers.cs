using System.Globalization;
using System.Net;

namespace Forwarder.Bench.Cli;

/// <summary>Parses the command line's durations (<c>500ms</c>, <c>10s</c>, <c>2m</c>, <c>1h</c>, or plain seconds), shares and addresses.</summary>
internal static class ValueParsers
{
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        var (number, unit) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 0.001)
            : text.EndsWith('s') ? (text[..^1], 1.0)
            : text.EndsWith('m') ? (text[..^1], 60.0)
            : text.EndsWith('h') ? (text[..^1], 3600.0)
            : (text, 1.0);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0 || double.IsInfinity(value))
        {
            return false;
        }

        duration = TimeSpan.FromSeconds(value * unit);
        return true;
    }

    /// <summary>A share: <c>5%</c> or <c>0.05</c>.</summary>
    public static bool TryParseShare(string text, out double share)
    {
        var percent = text.EndsWith('%');
        var parsed = double.TryParse(percent ? text[..^1] : text, NumberStyles.Float, CultureInfo.InvariantCulture, out share);
        share = percent ? share / 100 : share;
        return parsed && share >= 0 && double.IsFinite(share);
    }

    /// <summary>HOST:PORT, [IPv6]:PORT or NAME:PORT.</summary>
    public static bool TryParseEndPoint(string text, out EndPoint endpoint)
    {
        endpoint = null!;
        if (IPEndPoint.TryParse(text, out var ip) && ip.Port != 0 || (ip is not null && text.EndsWith(":0", StringComparison.Ordinal)))
        {
            endpoint = ip!;
            return true;
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return false;
        }

        endpoint = new DnsEndPoint(text[..colon], port);
        return true;
    }
}
