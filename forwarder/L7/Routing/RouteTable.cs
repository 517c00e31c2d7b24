using System.Text;
using Forwarder.L7.Http1;

namespace Forwarder.L7.Routing;

/// <summary>
/// Picks the first route, in configured order, whose conditions a request head meets. Immutable:
/// a reload builds a new table. Matching reads the head's bytes directly and allocates nothing.
/// </summary>
/// <param name="conditions">Where each route keeps its conditions.</param>
internal sealed class RouteTable<TRoute>(IReadOnlyList<TRoute> routes, Func<TRoute, RouteMatch> conditions)
    where TRoute : class
{
    private readonly CompiledRoute[] _routes = [.. routes.Select(r => new CompiledRoute(r, conditions(r)))];

    /// <summary>The first matching route, or null: then no upstream may see the request (404).</summary>
    public TRoute? Match(Http1RequestHead request)
    {
        var host = HostWithoutPort(request.Host);
        foreach (var route in _routes)
        {
            if (route.Matches(request, host))
            {
                return route.Route;
            }
        }

        return null;
    }

    private static ReadOnlySpan<byte> HostWithoutPort(ReadOnlySpan<byte> host)
    {
        // [v6]:port keeps its brackets; name:port and v4:port lose the port.
        var colon = host.LastIndexOf((byte)':');
        return colon > 0 && host.LastIndexOf((byte)']') < colon ? host[..colon] : host;
    }

    private sealed class CompiledRoute(TRoute route, RouteMatch match)
    {
        private readonly byte[]? _host = match.Host is { } host && !host.StartsWith("*.", StringComparison.Ordinal) ? Encoding.ASCII.GetBytes(host) : null;
        private readonly byte[]? _hostSuffix = match.Host is { } wildcard && wildcard.StartsWith("*.", StringComparison.Ordinal) ? Encoding.ASCII.GetBytes(wildcard[1..]) : null;
        private readonly byte[]? _path = match.Path is { Kind: not PathMatchKind.Regex } path ? Encoding.ASCII.GetBytes(path.Value) : null;
        private readonly byte[][] _methods = [.. match.Methods.Select(Encoding.ASCII.GetBytes)];
        private readonly (byte[] Name, byte[]? Value)[] _headers = [.. match.Headers.Select(h => (Encoding.ASCII.GetBytes(h.Name), h.Value is null ? null : Encoding.Latin1.GetBytes(h.Value)))];

        public TRoute Route { get; } = route;

        public bool Matches(Http1RequestHead request, ReadOnlySpan<byte> host)
            => MatchesHost(host) && MatchesMethod(request.Method) && MatchesPath(request.Path) && MatchesHeaders(request);

        private bool MatchesHost(ReadOnlySpan<byte> host)
        {
            if (_host is not null)
            {
                return Ascii.EqualsIgnoreCase(host, _host);
            }

            // *.example.com: at least one label before the suffix.
            return _hostSuffix is null || (host.Length > _hostSuffix.Length && Ascii.EqualsIgnoreCase(host[^_hostSuffix.Length..], _hostSuffix));
        }

        private bool MatchesMethod(ReadOnlySpan<byte> method)
        {
            if (_methods.Length == 0)
            {
                return true;
            }

            foreach (var allowed in _methods)
            {
                if (method.SequenceEqual(allowed))
                {
                    return true;
                }
            }

            return false;
        }

        private bool MatchesPath(ReadOnlySpan<byte> path)
        {
            switch (match.Path)
            {
                case null:
                    return true;
                case { Kind: PathMatchKind.Exact }:
                    return path.SequenceEqual(_path);
                case { Kind: PathMatchKind.Prefix }:
                    var prefix = _path.AsSpan().TrimEnd((byte)'/');
                    return path.StartsWith(prefix) && (path.Length == prefix.Length || path[prefix.Length] == (byte)'/');
                case { Compiled: { } regex }:
                    Span<char> chars = path.Length <= 1024 ? stackalloc char[path.Length] : new char[path.Length];
                    Encoding.Latin1.GetChars(path, chars);
                    return regex.IsMatch(chars);
                default:
                    return false;
            }
        }

        private bool MatchesHeaders(Http1RequestHead request)
        {
            foreach (var (name, value) in _headers)
            {
                var found = false;
                for (var i = 0; i < request.HeaderCount && !found; i++)
                {
                    found = Ascii.EqualsIgnoreCase(request.HeaderName(i), name) && (value is null || request.HeaderValue(i).SequenceEqual(value));
                }

                if (!found)
                {
                    return false;
                }
            }

            return true;
        }
    }
}
