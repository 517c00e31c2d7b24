namespace Forwarder.LoadBalancing.Hashing;

/// <summary>Where a hash policy finds a request's key.</summary>
public enum HashKeySource
{
    /// <summary>The client's IP address (L4 and L7).</summary>
    SourceIp,

    /// <summary>A request header's value.</summary>
    Header,

    /// <summary>A cookie's value; with <see cref="CookieAffinity"/> the proxy sets one when it is absent.</summary>
    Cookie,

    /// <summary>The request path without the query: a CDN keeps each object on one cache.</summary>
    Path,

    /// <summary>Host, path and query together.</summary>
    Url,

    /// <summary>A query-string parameter's value.</summary>
    Query,
}

/// <summary>
/// One entry of a service's hash-key list. A request is hashed on the first entry present in it;
/// when none is, the pick is random.
/// </summary>
/// <param name="Name">The header, cookie or query parameter name; null for the others.</param>
/// <param name="Affinity">For a cookie key: set a generated cookie when the request has none, so the client sticks from its next request on.</param>
public sealed record HashKey(HashKeySource Source, string? Name = null, CookieAffinity? Affinity = null)
{
    public static HashKey SourceIp { get; } = new(HashKeySource.SourceIp);
}

/// <summary>How the affinity cookie the proxy generates is set.</summary>
/// <param name="Ttl">Max-Age of the cookie; a session cookie when null.</param>
public sealed record CookieAffinity(TimeSpan? Ttl, string Path);
