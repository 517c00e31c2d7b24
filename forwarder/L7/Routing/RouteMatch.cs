using System.Text.RegularExpressions;

namespace Forwarder.L7.Routing;

/// <summary>How a route's path condition compares.</summary>
internal enum PathMatchKind
{
    /// <summary>The whole path, byte for byte.</summary>
    Exact,

    /// <summary>A leading run of whole segments: /api matches /api and /api/x, not /apix; / matches everything.</summary>
    Prefix,

    /// <summary>A .NET regular expression over the whole path (anchored), with a match timeout.</summary>
    Regex,
}

/// <summary>A path condition; regexes are compiled once when the route table is built.</summary>
internal sealed record PathMatch(PathMatchKind Kind, string Value)
{
    private static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(50);

    public Regex? Compiled { get; } = Kind == PathMatchKind.Regex
        ? new Regex($"^(?:{Value})$", RegexOptions.CultureInvariant | RegexOptions.Compiled | RegexOptions.NonBacktracking, RegexTimeout)
        : null;
}

/// <summary>A header condition: present (any value) when <paramref name="Value"/> is null, else equal (case-sensitive value, case-insensitive name).</summary>
internal sealed record HeaderMatch(string Name, string? Value);

/// <summary>
/// What a request must look like to take a route; every condition given must hold.
/// </summary>
/// <param name="Host">Exact host (case-insensitive, port ignored), "*.example.com" for any subdomain, or null for any.</param>
/// <param name="Methods">Allowed methods, or empty for any.</param>
internal sealed record RouteMatch(string? Host, PathMatch? Path, IReadOnlyList<string> Methods, IReadOnlyList<HeaderMatch> Headers);
