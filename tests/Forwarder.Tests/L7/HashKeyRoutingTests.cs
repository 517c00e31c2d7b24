using Forwarder.Tests.Infrastructure;
using static Forwarder.Tests.L7.Http1ProxyTests;

namespace Forwarder.Tests.L7;

/// <summary>
/// Request-level hash keys on an http listener (issue 3's end-to-end case): requests with the
/// same key land on the same backend, different keys spread, and a generated affinity cookie
/// makes a client stick from its second request on.
/// </summary>
public sealed class HashKeyRoutingTests
{
    private static HttpTestBackend[] Named(int count) => [.. Enumerable.Range(0, count).Select(i => HttpTestBackend.Text($"b{i}"))];

    [Theory]
    [InlineData("ring_hash", "- header: x-user", "X-User: {0}\r\n", "/")]
    [InlineData("maglev", "- header: x-user", "X-User: {0}\r\n", "/")]
    [InlineData("maglev", "- cookie: session", "Cookie: theme=dark; session={0}\r\n", "/")]
    [InlineData("ring_hash", "- url", "", "/objects/{0}.jpg")]
    [InlineData("maglev", "- query: id", "", "/item?id={0}&page=2")]
    public async Task SameKey_SameBackend_DifferentKeysSpread(string policy, string key, string headerFormat, string pathFormat)
    {
        var backends = Named(4);
        try
        {
            await using var forwarder = await RunningForwarder.StartAsync(Config("- service: cache", Service("cache", $"lb:\n  policy: {policy}\n  hash:\n    {key}", backends)));
            var web = forwarder.EndPoint("web");
            var placement = new Dictionary<string, string>();
            for (var user = 0; user < 24; user++)
            {
                var value = $"user-{user}";
                var answers = new HashSet<string>();
                for (var i = 0; i < 3; i++)
                {
                    var request = $"GET {string.Format(System.Globalization.CultureInfo.InvariantCulture, pathFormat, value)} HTTP/1.1\r\nHost: cdn.test\r\n{string.Format(System.Globalization.CultureInfo.InvariantCulture, headerFormat, value)}\r\n";
                    answers.Add((await ExchangeAsync(web, request)).Body);
                }

                placement[value] = Assert.Single(answers);
            }

            Assert.True(placement.Values.Distinct().Count() >= 3, $"24 keys over 4 backends used only {string.Join(",", placement.Values.Distinct())}");
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task GeneratedAffinityCookie_IsSetOnce_ThenKeepsTheClientOnOneBackend()
    {
        var backends = Named(3);
        try
        {
            var lb = "lb:\n  policy: ring_hash\n  hash:\n    - cookie: { name: affinity, generate: true, ttl: 1h }";
            await using var forwarder = await RunningForwarder.StartAsync(Config("- service: app", Service("app", lb, backends)));
            var web = forwarder.EndPoint("web");
            var landed = new HashSet<string>();
            for (var client = 0; client < 12; client++)
            {
                var (_, head, first) = await ExchangeAsync(web, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                var setCookie = SocketReader.HeaderOf(head, "set-cookie");
                Assert.NotNull(setCookie);
                Assert.Contains("Max-Age=3600", setCookie, StringComparison.Ordinal);
                Assert.Contains("HttpOnly", setCookie, StringComparison.Ordinal);
                var cookie = setCookie.Split(';')[0];
                landed.Add(first);

                for (var i = 0; i < 3; i++)
                {
                    var (_, nextHead, next) = await ExchangeAsync(web, $"GET / HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n");
                    Assert.Equal(first, next);
                    Assert.Null(SocketReader.HeaderOf(nextHead, "set-cookie"));
                }
            }

            Assert.True(landed.Count >= 2, "twelve generated cookies spread over the backends");
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }
}
