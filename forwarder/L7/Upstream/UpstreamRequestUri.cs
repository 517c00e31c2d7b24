using System.Diagnostics.CodeAnalysis;

namespace Forwarder.L7.Upstream;

/// <summary>
/// The URI of a request sent through an endpoint's <see cref="UpstreamConnectionPool.Http"/>.
/// Its path and query are the client's bytes as they were routed, not canonicalized: a plain
/// <see cref="Uri"/> would collapse <c>/public/../admin</c> (or <c>%2e%2e</c>) to <c>/admin</c>
/// after the route matched <c>/public</c>. Its authority is a placeholder: the handler dials its
/// one endpoint whatever the URI names, and the Host header (HTTP/2's :authority) is set apart.
/// </summary>
internal static class UpstreamRequestUri
{
    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    /// <summary>False when <paramref name="pathAndQuery"/> is not an origin-form target a URI can carry.</summary>
    public static bool TryCreate(string pathAndQuery, [NotNullWhen(true)] out Uri? uri)
    {
        uri = null;
        return pathAndQuery.StartsWith('/') && Uri.TryCreate("http://upstream" + pathAndQuery, in Verbatim, out uri);
    }
}
