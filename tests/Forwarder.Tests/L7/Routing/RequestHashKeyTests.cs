using System.Buffers;
using System.IO.Hashing;
using System.Net;
using System.Text;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;
using Forwarder.LoadBalancing.Hashing;

namespace Forwarder.Tests.L7.Routing;

public sealed class RequestHashKeyTests
{
    private static readonly IPAddress Client = IPAddress.Parse("198.51.100.23");

    private static Http1RequestHead Head(string request)
    {
        var head = new Http1RequestHead();
        var status = Http1RequestParser.TryParse(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(request)), Http1Limits.Default, head, out _, out var error);
        Assert.True(status == Http1ParseStatus.Complete, error.Reason);
        return head;
    }

    private static ulong? Hash(HashKey[] keys, string request, out GeneratedCookie? generated)
        => RequestHashKey.Compute(keys, Head(request), Client, out generated);

    private static ulong Of(string text) => XxHash64.HashToUInt64(Encoding.ASCII.GetBytes(text));

    [Fact]
    public void Compute_Header_HashesItsValueWhateverTheNameCase()
    {
        HashKey[] keys = [new(HashKeySource.Header, "x-user")];

        Assert.Equal(Of("alice"), Hash(keys, "GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n", out _));
        Assert.Equal(Of("alice"), Hash(keys, "GET /other HTTP/1.1\r\nHost: b\r\nx-user: alice\r\n\r\n", out _));
        Assert.NotEqual(Of("alice"), Hash(keys, "GET / HTTP/1.1\r\nHost: a\r\nX-User: bob\r\n\r\n", out _));
    }

    [Fact]
    public void Compute_FirstKeyPresentWins_AndNoneMeansRandom()
    {
        HashKey[] keys = [new(HashKeySource.Header, "x-user"), new(HashKeySource.Query, "session"), HashKey.SourceIp];

        Assert.Equal(Of("s1"), Hash(keys, "GET /?a=1&session=s1 HTTP/1.1\r\nHost: a\r\n\r\n", out _));
        Assert.Equal(AddressHash.Of(Client), Hash(keys, "GET /?a=1 HTTP/1.1\r\nHost: a\r\n\r\n", out _));
        Assert.Null(RequestHashKey.Compute([new(HashKeySource.Header, "x-user")], Head("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Client, out _));
    }

    [Fact]
    public void Compute_Cookie_IsFoundAmongOthers()
    {
        HashKey[] keys = [new(HashKeySource.Cookie, "sid")];

        Assert.Equal(Of("abc123"), Hash(keys, "GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; sid=abc123; lang=en\r\n\r\n", out var generated));
        Assert.Null(generated);
        Assert.Equal(Of("q"), Hash(keys, "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: sid=\"q\"\r\n\r\n", out _));
        Assert.Null(Hash(keys, "GET / HTTP/1.1\r\nHost: a\r\nCookie: xsid=1; sids=2\r\n\r\n", out _));
    }

    [Fact]
    public void Compute_AbsentAffinityCookie_IsGeneratedAndItsHashUsed()
    {
        HashKey[] keys = [new(HashKeySource.Cookie, "route", new CookieAffinity(TimeSpan.FromHours(1), "/app")), HashKey.SourceIp];

        var hash = Hash(keys, "GET /app/x HTTP/1.1\r\nHost: a\r\n\r\n", out var generated);

        Assert.NotNull(generated);
        Assert.Equal(Of(generated.Value), hash);
        Assert.Matches("^route=[0-9a-f]{32}; Path=/app; Max-Age=3600; HttpOnly$", generated.SetCookieValue);

        // The client sends it back: the same key, nothing generated.
        Assert.Equal(hash, Hash(keys, $"GET /app/y HTTP/1.1\r\nHost: a\r\nCookie: route={generated.Value}\r\n\r\n", out var again));
        Assert.Null(again);
    }

    [Fact]
    public void Compute_PathAndUrl_AreTheCdnKeys()
    {
        Assert.Equal(Of("/img/logo.png"), Hash([new(HashKeySource.Path)], "GET /img/logo.png?v=2 HTTP/1.1\r\nHost: cdn\r\n\r\n", out _));
        Assert.Equal(Of("cdn.example/img/logo.png?v=2"), Hash([new(HashKeySource.Url)], "GET /img/logo.png?v=2 HTTP/1.1\r\nHost: cdn.example\r\n\r\n", out _));
        Assert.Equal(Of("cdn.example/a"), Hash([new(HashKeySource.Url)], "GET /a HTTP/1.1\r\nHost: cdn.example\r\n\r\n", out _));
    }

    [Fact]
    public void Compute_SourceIp_MatchesTheL4Hash()
        => Assert.Equal(AddressHash.Of(IPAddress.Parse("::ffff:198.51.100.23")), Hash([HashKey.SourceIp], "GET / HTTP/1.1\r\nHost: a\r\n\r\n", out _));
}
