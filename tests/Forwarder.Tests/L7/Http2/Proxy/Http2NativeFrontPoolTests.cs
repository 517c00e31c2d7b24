using System.Net;
using System.Runtime.CompilerServices;
using Forwarder.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Forwarder.Tests.L7.Http1ProxyTests;
using static Forwarder.Tests.L7.Http2ForwardingRulesTests;

namespace Forwarder.Tests.L7.Http2.Proxy;

/// <summary>
/// The native HTTP/2 front's connections to one endpoint: as many as its streams need unless the
/// service sets http.maxConnections, and a request that finds them all full until the route's
/// timeout is this node's 503, not the endpoint's failure. The Kestrel upstream allows one stream
/// per connection, so every request in flight takes a connection.
/// </summary>
public sealed class Http2NativeFrontPoolTests
{
    /// <summary>An upstream that sends each response's head at once and, but for /warm, its body when <paramref name="release"/> completes.</summary>
    private static Task<KestrelTestBackend> OneStreamPerConnectionAsync(StrongBox<int> arrived, Task release)
        => KestrelTestBackend.StartHttp2Async(
            async context =>
            {
                if (context.Request.Path == "/warm")
                {
                    await context.Response.WriteAsync("warm");
                    return;
                }

                Interlocked.Increment(ref arrived.Value);
                await context.Response.StartAsync();
                await context.Response.Body.FlushAsync();
                await release;
                await context.Response.WriteAsync("ok");
            },
            k => k.Limits.Http2.MaxStreamsPerConnection = 1);

    [Fact]
    public async Task WithoutAServiceLimit_StreamsPastFourConnections_AreAllSentAtOnce()
    {
        var arrived = new StrongBox<int>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await OneStreamPerConnectionAsync(arrived, release.Task);
        await using var forwarder = await RunningForwarder.StartAsync(Config("- service: h2", Http2Service("h2", backend.Port), "http2: native"));
        using var client = H2cClient();

        var requests = Enumerable.Range(0, 6).Select(_ => client.GetStringAsync(At(forwarder.EndPoint("web"), "/x"))).ToArray();
        await Eventually.TrueAsync(() => Volatile.Read(ref arrived.Value) == 6, () => $"{Volatile.Read(ref arrived.Value)} of 6 requests reached the upstream");
        release.SetResult();
        Assert.All(await Task.WhenAll(requests), body => Assert.Equal("ok", body));
        Assert.Equal(6, forwarder.Runtime.Services["h2"].Endpoints[0].Pool.Http2.ConnectionCount);
    }

    [Fact]
    public async Task AtTheServiceLimit_ARequestThatFindsNoRoomInTime_Is503_AndNotTheEndpointsFailure()
    {
        var arrived = new StrongBox<int>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await OneStreamPerConnectionAsync(arrived, release.Task);
        var service = $"h2:\n  http: {{ version: \"2\", maxConnections: 2 }}\n  outlierDetection: {{ consecutiveFailures: 1 }}\n  endpoints:\n    - address: 127.0.0.1:{backend.Port}";
        await using var forwarder = await RunningForwarder.StartAsync(Config("- { service: h2, timeout: 5s }", service, "http2: native"));
        using var client = H2cClient();
        var web = forwarder.EndPoint("web");

        // Both paths warmed, so the held heads come well within the route's timeout on a loaded machine.
        using (var warm = await client.GetAsync(At(web, "/warm")))
        {
            Assert.Equal("warm", await warm.Content.ReadAsStringAsync());
        }

        // Two streams hold both connections (their heads came, so the route's timeout is over for them).
        var held = Enumerable.Range(0, 2).Select(_ => client.GetAsync(At(web, "/held"), HttpCompletionOption.ResponseHeadersRead)).ToArray();
        await Eventually.TrueAsync(() => Volatile.Read(ref arrived.Value) == 2, "both held requests reached the upstream");
        var heads = await Task.WhenAll(held);
        Assert.All(heads, response => Assert.Equal(HttpStatusCode.OK, response.StatusCode));

        using var waited = await client.GetAsync(At(web, "/waits"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, waited.StatusCode);
        Assert.Equal(2, Volatile.Read(ref arrived.Value));
        var endpoint = forwarder.Runtime.Services["h2"].Endpoints[0];
        Assert.Equal((0, 0L), (endpoint.Health.ConsecutiveFailures, endpoint.Health.Ejections));
        Assert.Equal(1, forwarder.Metrics.Service("h2").PoolFullCount);

        release.SetResult();
        foreach (var response in heads)
        {
            using (response)
            {
                Assert.Equal("ok", await response.Content.ReadAsStringAsync());
            }
        }

        // Room again: the endpoint serves.
        using var after = await client.GetAsync(At(web, "/after"));
        Assert.Equal("ok", await after.Content.ReadAsStringAsync());
    }
}
