using System.Net;
using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing.Tests.Health;

public sealed class ActiveHealthCheckerTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    private readonly RecordingObserver _observer = new();

    private static HealthCheckOptions Options(HealthCheckKind kind) => new(kind, Interval, TimeSpan.FromSeconds(5), HealthyThreshold: 2, UnhealthyThreshold: 2, Jitter: TimeSpan.FromMilliseconds(20), Path: "/ready");

    [Fact]
    public async Task Tcp_ListenerStopsAndComesBack_EndpointGoesDownAndUp()
    {
        var server = new StatusServer();
        var port = server.EndPoint.Port;
        using var health = new ServiceHealth(TimeProvider.System, _observer);
        var state = health.Configure(["a"], outlier: null)[0];
        await using var checker = new ActiveHealthChecker(Options(HealthCheckKind.Tcp), health, [new HealthCheckTarget(state, server.EndPoint, "a")], TimeProvider.System);
        checker.Start();

        await _observer.WaitForAsync("a healthy");
        await server.DisposeAsync();
        await _observer.WaitForAsync("a unhealthy");
        Assert.Equal("connection refused", state.LastCheckFailure);

        await using var again = new StatusServer(port);
        await WaitUntil(() => _observer.Events.Count == 3);
        Assert.Equal(["a healthy", "a unhealthy", "a healthy"], _observer.Events);
    }

    [Fact]
    public async Task Http_StatusTurnsTo503AndBack_EndpointGoesDownAndUp()
    {
        await using var server = new StatusServer();
        using var health = new ServiceHealth(TimeProvider.System, _observer);
        var state = health.Configure(["a"], outlier: null)[0];
        var options = Options(HealthCheckKind.Http) with { Host = "app.internal" };
        await using var checker = new ActiveHealthChecker(options, health, [new HealthCheckTarget(state, server.EndPoint, "a")], TimeProvider.System);
        checker.Start();

        await _observer.WaitForAsync("a healthy");
        Assert.StartsWith("GET /ready HTTP/1.1\r\nHost: app.internal\r\n", server.LastRequestHead);
        server.Status = 503;
        await _observer.WaitForAsync("a unhealthy");
        Assert.Equal("status 503", state.LastCheckFailure);
        server.Status = 204;
        await WaitUntil(() => _observer.Events.Count == 3);
        Assert.Equal(["a healthy", "a unhealthy", "a healthy"], _observer.Events);
    }

    [Fact]
    public async Task Http_ServerNeverAnswers_FailsWithTimeout()
    {
        await using var server = new StatusServer { Silent = true };
        using var health = new ServiceHealth(TimeProvider.System, _observer);
        var state = health.Configure(["a"], outlier: null)[0];
        var options = Options(HealthCheckKind.Http) with { Timeout = TimeSpan.FromMilliseconds(200) };
        await using var checker = new ActiveHealthChecker(options, health, [new HealthCheckTarget(state, server.EndPoint, "a")], TimeProvider.System);
        checker.Start();

        await _observer.WaitForAsync("a unhealthy");
        Assert.Equal("timed out", state.LastCheckFailure);
    }

    [Fact]
    public async Task DisposeAsync_StopsChecking()
    {
        await using var server = new StatusServer();
        using var health = new ServiceHealth(TimeProvider.System, _observer);
        var state = health.Configure(["a"], outlier: null)[0];
        var checker = new ActiveHealthChecker(Options(HealthCheckKind.Tcp), health, [new HealthCheckTarget(state, server.EndPoint, "a")], TimeProvider.System);
        checker.Start();
        await _observer.WaitForAsync("a healthy");

        await checker.DisposeAsync();
        var checks = state.ChecksPassed + state.ChecksFailed;
        await Task.Delay(Interval * 4);
        Assert.Equal(checks, state.ChecksPassed + state.ChecksFailed);
    }

    [Fact]
    public async Task Tcp_UnresolvableHost_Fails()
    {
        using var health = new ServiceHealth(TimeProvider.System, _observer);
        var state = health.Configure(["a"], outlier: null)[0];
        await using var checker = new ActiveHealthChecker(Options(HealthCheckKind.Tcp), health, [new HealthCheckTarget(state, new DnsEndPoint("no-such-host.invalid", 80), "a")], TimeProvider.System);
        checker.Start();

        await _observer.WaitForAsync("a unhealthy");
        Assert.NotNull(state.LastCheckFailure);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 30 s");
            await Task.Delay(10);
        }
    }
}
