using System.Buffers;
using System.IO.Hashing;
using System.Net;
using System.Text;
using Forwarder.L7.Http1;
using Forwarder.LoadBalancing.Hashing;

namespace Forwarder.L7.Routing;

/// <summary>An affinity cookie the proxy made up for a request that had none, to be set on its response.</summary>
internal sealed record GeneratedCookie(string Name, string Value, CookieAffinity Affinity)
{
    /// <summary>The Set-Cookie value: HttpOnly, since scripts have no business with routing.</summary>
    public string SetCookieValue => Affinity.Ttl is { } ttl
        ? $"{Name}={Value}; Path={Affinity.Path}; Max-Age={(long)ttl.TotalSeconds}; HttpOnly"
        : $"{Name}={Value}; Path={Affinity.Path}; HttpOnly";
}

/// <summary>
/// Computes a request's key hash for the hash policies from a service's <c>lb.hash</c> list: the
/// first key present wins; with none, the pick is random. A cookie key with <c>generate</c> makes
/// up a value when the cookie is absent (and stops the search there), so the client sticks from
/// its next request on.
/// </summary>
internal static class RequestHashKey
{
    public static ulong? Compute(IReadOnlyList<HashKey> keys, Http1RequestHead request, IPAddress? client, out GeneratedCookie? generated)
    {
        generated = null;
        foreach (var key in keys)
        {
            switch (key.Source)
            {
                case HashKeySource.SourceIp when client is not null:
                    return AddressHash.Of(client);
                case HashKeySource.Header when HeaderValue(request, key.Name!) is { IsEmpty: false } value:
                    return XxHash64.HashToUInt64(value);
                case HashKeySource.Cookie when CookieValue(request, key.Name!) is { IsEmpty: false } cookie:
                    return XxHash64.HashToUInt64(cookie);
                case HashKeySource.Cookie when key.Affinity is { } affinity:
                    var made = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
                    generated = new GeneratedCookie(key.Name!, made, affinity);
                    return XxHash64.HashToUInt64(Encoding.ASCII.GetBytes(made));
                case HashKeySource.Path:
                    return XxHash64.HashToUInt64(request.Path);
                case HashKeySource.Url:
                    return UrlHash(request);
                case HashKeySource.Query when QueryValue(request.Query, key.Name!) is { IsEmpty: false } parameter:
                    return XxHash64.HashToUInt64(parameter);
            }
        }

        return null;
    }

    /// <summary>Host, path and query as one string: the CDN key that keeps each object on one cache.</summary>
    private static ulong UrlHash(Http1RequestHead request)
    {
        var length = request.Host.Length + request.Path.Length + 1 + request.Query.Length;
        var rented = length > 2048 ? ArrayPool<byte>.Shared.Rent(length) : null;
        var buffer = rented is null ? stackalloc byte[length] : rented.AsSpan(0, length);
        request.Host.CopyTo(buffer);
        request.Path.CopyTo(buffer[request.Host.Length..]);
        var written = request.Host.Length + request.Path.Length;
        if (!request.Query.IsEmpty)
        {
            buffer[written++] = (byte)'?';
            request.Query.CopyTo(buffer[written..]);
            written += request.Query.Length;
        }

        var hash = XxHash64.HashToUInt64(buffer[..written]);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        return hash;
    }

    private static ReadOnlySpan<byte> HeaderValue(Http1RequestHead request, string name)
    {
        for (var i = 0; i < request.HeaderCount; i++)
        {
            if (EqualsIgnoreCase(request.HeaderName(i), name))
            {
                return request.HeaderValue(i);
            }
        }

        return default;
    }

    /// <summary>The named cookie's value from any Cookie header ("a=1; b=2").</summary>
    private static ReadOnlySpan<byte> CookieValue(Http1RequestHead request, string name)
    {
        for (var i = 0; i < request.HeaderCount; i++)
        {
            if (!EqualsIgnoreCase(request.HeaderName(i), "cookie"))
            {
                continue;
            }

            var pairs = request.HeaderValue(i);
            while (!pairs.IsEmpty)
            {
                var end = pairs.IndexOf((byte)';');
                var pair = (end < 0 ? pairs : pairs[..end]).Trim((byte)' ');
                pairs = end < 0 ? default : pairs[(end + 1)..];
                var equals = pair.IndexOf((byte)'=');
                if (equals > 0 && Equals(pair[..equals], name))
                {
                    return pair[(equals + 1)..].Trim((byte)'"');
                }
            }
        }

        return default;
    }

    /// <summary>The named parameter's raw (undecoded) value from a query string.</summary>
    private static ReadOnlySpan<byte> QueryValue(ReadOnlySpan<byte> query, string name)
    {
        while (!query.IsEmpty)
        {
            var end = query.IndexOf((byte)'&');
            var pair = end < 0 ? query : query[..end];
            query = end < 0 ? default : query[(end + 1)..];
            var equals = pair.IndexOf((byte)'=');
            var key = equals < 0 ? pair : pair[..equals];
            if (Equals(key, name))
            {
                return equals < 0 ? default : pair[(equals + 1)..];
            }
        }

        return default;
    }

    private static bool Equals(ReadOnlySpan<byte> bytes, string text)
        => bytes.Length == text.Length && Ascii.Equals(bytes, text);

    private static bool EqualsIgnoreCase(ReadOnlySpan<byte> bytes, string text)
        => bytes.Length == text.Length && Ascii.EqualsIgnoreCase(bytes, text);
}
