using System.Globalization;
using System.Net;

namespace Forwarder.Configuration;

/// <summary>Parsers for the scalar formats config files use: durations, byte sizes and addresses.</summary>
internal static class ValueParsers
{
    private static readonly (string Suffix, double Seconds)[] s_durationUnits =
        [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)];

    private static readonly (string Suffix, long Bytes)[] s_sizeUnits =
        [("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("KB", 1000), ("MB", 1000_000), ("GB", 1000_000_000), ("B", 1)];

    /// <summary>Parses "250ms", "2s", "1m30s", "1.5h" or "0".</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        var rest = text.AsSpan().Trim();
        if (rest.IsEmpty)
        {
            return false;
        }

        if (rest.SequenceEqual("0"))
        {
            return true;
        }

        double seconds = 0;
        while (!rest.IsEmpty)
        {
            var digits = 0;
            while (digits < rest.Length && (char.IsAsciiDigit(rest[digits]) || rest[digits] == '.'))
            {
                digits++;
            }

            if (digits == 0 || !double.TryParse(rest[..digits], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
            {
                return false;
            }

            rest = rest[digits..];
            var unit = MatchUnit(rest);
            if (unit < 0)
            {
                return false;
            }

            seconds += amount * s_durationUnits[unit].Seconds;
            rest = rest[s_durationUnits[unit].Suffix.Length..];
        }

        if (seconds > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            return false;
        }

        value = TimeSpan.FromSeconds(seconds);
        return true;
    }

    private static int MatchUnit(ReadOnlySpan<char> text)
    {
        for (var i = 0; i < s_durationUnits.Length; i++)
        {
            var suffix = s_durationUnits[i].Suffix;
            if (text.StartsWith(suffix, StringComparison.Ordinal) && (text.Length == suffix.Length || !char.IsAsciiLetter(text[suffix.Length])))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Formats a duration the way it would be written in config ("1m30s", "250ms").</summary>
    public static string FormatDuration(TimeSpan value)
    {
        if (value == TimeSpan.Zero)
        {
            return "0";
        }

        if (value.TotalSeconds < 1)
        {
            return value.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms";
        }

        var parts = new System.Text.StringBuilder();
        if (value.Days > 0)
        {
            parts.Append(value.Days).Append('d');
        }

        if (value.Hours > 0)
        {
            parts.Append(value.Hours).Append('h');
        }

        if (value.Minutes > 0)
        {
            parts.Append(value.Minutes).Append('m');
        }

        var seconds = value.Seconds + (value.Milliseconds / 1000.0);
        if (seconds > 0)
        {
            parts.Append(seconds.ToString("0.###", CultureInfo.InvariantCulture)).Append('s');
        }

        return parts.ToString();
    }

    /// <summary>Parses a byte count: "65536", "64KiB", "1MiB", "1MB".</summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var span = text.AsSpan().Trim();
        long multiplier = 1;
        foreach (var (suffix, unitBytes) in s_sizeUnits)
        {
            if (span.EndsWith(suffix, StringComparison.Ordinal))
            {
                multiplier = unitBytes;
                span = span[..^suffix.Length].TrimEnd();
                break;
            }
        }

        if (!long.TryParse(span, NumberStyles.None, CultureInfo.InvariantCulture, out var amount) || amount > long.MaxValue / multiplier)
        {
            return false;
        }

        bytes = amount * multiplier;
        return true;
    }

    /// <summary>Parses "HOST:PORT" where HOST is an IP literal ("[::1]" for IPv6) or "*" for every address.</summary>
    public static bool TryParseListenAddress(string text, out IPEndPoint endPoint)
    {
        endPoint = null!;
        if (!TrySplitHostPort(text, out var host, out var port))
        {
            return false;
        }

        IPAddress? address = host == "*" ? IPAddress.IPv6Any : IPAddress.TryParse(host, out var parsed) ? parsed : null;
        if (address is null)
        {
            return false;
        }

        endPoint = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>Parses "HOST:PORT" where HOST is an IP literal or a DNS name resolved at connect time.</summary>
    public static bool TryParseEndpointAddress(string text, out EndPoint endPoint)
    {
        endPoint = null!;
        if (!TrySplitHostPort(text, out var host, out var port) || port == 0)
        {
            return false;
        }

        if (IPAddress.TryParse(host, out var address))
        {
            endPoint = new IPEndPoint(address, port);
            return true;
        }

        if (Uri.CheckHostName(host) != UriHostNameType.Dns)
        {
            return false;
        }

        endPoint = new DnsEndPoint(host, port);
        return true;
    }

    private static bool TrySplitHostPort(string text, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > IPEndPoint.MaxPort)
        {
            return false;
        }

        host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
            return IPAddress.TryParse(host, out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        }

        // An unbracketed IPv6 literal would make the port ambiguous.
        return !host.Contains(':');
    }
}
