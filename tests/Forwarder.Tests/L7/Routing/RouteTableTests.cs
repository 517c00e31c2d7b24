using System.Buffers;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Routing;

namespace Forwarder.Tests.L7.Routing;

public sealed class RouteTableTests
{
    private static readonly RouteTable<RouteConfig> Table = new(
    [
        Route("admin-exact", new RouteMatch("api.example.com", new PathMatch(PathMatchKind.Exact, "/admin"), ["POST"], []), "admin"),
        Route("canary", new RouteMatch("api.example.com", new PathMatch(PathMatchKind.Prefix, "/v2/"), [], [new HeaderMatch("X-Canary", "on")]), "v2-canary"),
        Route("v2", new RouteMatch("api.example.com", new PathMatch(PathMatchKind.Prefix, "/v2"), [], []), "v2"),
        Route("items", new RouteMatch(null, new PathMatch(PathMatchKind.Regex, "/items/[0-9]+"), ["GET", "HEAD"], []), "items"),
        Route("tenants", new RouteMatch("*.tenants.example.com", null, [], [new HeaderMatch("Authorization", null)]), "tenants"),
        Route("static", new RouteMatch("static.example.com", new PathMatch(PathMatchKind.Prefix, "/"), [], []), "cdn"),
    ],
        r => r.Match);

    private static RouteConfig Route(string name, RouteMatch match, string service)
        => new(name, match, [new RouteBackend(service, 1)], RouteConfig.DefaultTimeout, RetryPolicy.Default);

    private static string? RouteOf(string request)
    {
        var head = new Http1RequestHead();
        var status = Http1RequestParser.TryParse(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(request)), Http1Limits.Default, head, out _, out var error);
        Assert.True(status == Http1ParseStatus.Complete, error.Reason);
        return Table.Match(head)?.Name;
    }

    [Theory]
    [InlineData("POST /admin HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "admin-exact")]
    [InlineData("GET /admin HTTP/1.1\r\nHost: api.example.com\r\n\r\n", null)]
    [InlineData("POST /admin/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", null)]
    [InlineData("GET /v2/users HTTP/1.1\r\nHost: API.Example.com:8443\r\nX-Canary: on\r\n\r\n", "canary")]
    [InlineData("GET /v2/users HTTP/1.1\r\nHost: api.example.com\r\nX-Canary: off\r\n\r\n", "v2")]
    [InlineData("GET /v2 HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "v2")]
    [InlineData("GET /v2?x=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "v2")]
    [InlineData("GET /v20 HTTP/1.1\r\nHost: api.example.com\r\n\r\n", null)]
    [InlineData("GET /items/42 HTTP/1.1\r\nHost: anything\r\n\r\n", "items")]
    [InlineData("HEAD /items/7 HTTP/1.1\r\nHost: anything\r\n\r\n", "items")]
    [InlineData("GET /items/42/reviews HTTP/1.1\r\nHost: anything\r\n\r\n", null)]
    [InlineData("DELETE /items/42 HTTP/1.1\r\nHost: anything\r\n\r\n", null)]
    [InlineData("GET /x HTTP/1.1\r\nHost: acme.tenants.example.com\r\nAuthorization: Bearer t\r\n\r\n", "tenants")]
    [InlineData("GET /x HTTP/1.1\r\nHost: acme.tenants.example.com\r\n\r\n", null)]
    [InlineData("GET /x HTTP/1.1\r\nHost: tenants.example.com\r\nAuthorization: Bearer t\r\n\r\n", null)]
    [InlineData("GET /img/logo.png HTTP/1.1\r\nHost: static.example.com\r\n\r\n", "static")]
    [InlineData("GET http://static.example.com/a HTTP/1.1\r\nHost: elsewhere\r\n\r\n", "static")]
    [InlineData("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", null)]
    public void Match_FirstRouteWhoseConditionsAllHold(string request, string? expected)
        => Assert.Equal(expected, RouteOf(request));

    [Fact]
    public void Match_SteadyState_DoesNotAllocate()
    {
        var head = new Http1RequestHead();
        Http1RequestParser.TryParse(new ReadOnlySequence<byte>("GET /items/42 HTTP/1.1\r\nHost: static.example.com\r\nX-Canary: on\r\n\r\n"u8.ToArray()), Http1Limits.Default, head, out _, out _);
        Table.Match(head);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            Table.Match(head);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
