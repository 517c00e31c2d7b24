using Forwarder.LoadBalancing.Health;

namespace Forwarder.LoadBalancing.Tests.Health;

public sealed class ServiceHealthTests
{
    private static readonly OutlierDetectionOptions Outlier = new(3, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(25), 50);
    private static readonly HealthCheckOptions Checks = new(HealthCheckKind.Tcp, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), HealthyThreshold: 2, UnhealthyThreshold: 3, TimeSpan.Zero);

    private readonly ManualTimeProvider _time = new();
    private readonly RecordingObserver _observer = new();

    [Fact]
    public void ReportFailure_ThresholdReached_EjectsForBaseTimeThenReturns()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a", "b"], Outlier);
        var changes = 0;
        health.Subscribe(() => changes++);

        health.ReportFailure(endpoints[0]);
        health.ReportFailure(endpoints[0]);
        Assert.False(endpoints[0].Ejected);
        health.ReportFailure(endpoints[0]);

        Assert.True(endpoints[0].Ejected);
        Assert.False(endpoints[0].IsAvailable(activeChecks: false));
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(10), endpoints[0].EjectedUntil);
        Assert.Equal(2, changes);

        _time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.True(endpoints[0].Ejected);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.False(endpoints[0].Ejected);
        Assert.True(endpoints[0].IsAvailable(activeChecks: false));
        Assert.Equal(3, changes);
        Assert.Equal(["a ejected 10s", "a returned"], _observer.Events);
        Assert.Equal(0, _time.ActiveTimers);
    }

    [Fact]
    public void ReportSuccess_BetweenFailures_RestartsTheRun()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a", "b"], Outlier);

        for (var round = 0; round < 10; round++)
        {
            health.ReportFailure(endpoints[0]);
            health.ReportFailure(endpoints[0]);
            ServiceHealth.ReportSuccess(endpoints[0]);
        }

        Assert.False(endpoints[0].Ejected);
        Assert.Equal(0, endpoints[0].ConsecutiveFailures);
    }

    [Fact]
    public void ReportFailure_RepeatedEjections_LastLongerUpToTheCapThenDecay()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a", "b"], Outlier);
        List<TimeSpan> lengths = [];
        for (var ejection = 0; ejection < 4; ejection++)
        {
            EjectAndWait(health, endpoints[0], lengths);
        }

        // 10 s base, multiplied by the ejection count, capped at 25 s.
        Assert.Equal([10, 20, 25, 25], lengths.Select(l => l.TotalSeconds));

        // A quiet spell longer than the cap starts over from the base time.
        _time.Advance(TimeSpan.FromSeconds(26));
        EjectAndWait(health, endpoints[0], lengths);
        Assert.Equal(10, lengths[^1].TotalSeconds);
        Assert.Equal(5, endpoints[0].Ejections);
    }

    [Fact]
    public void ReportFailure_MaxEjectionPercent_LeavesTheRestInService()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure([.. Enumerable.Range(0, 10).Select(i => $"e{i}")], Outlier with { MaxEjectionPercent = 20 });

        foreach (var endpoint in endpoints)
        {
            for (var i = 0; i < Outlier.ConsecutiveFailures; i++)
            {
                health.ReportFailure(endpoint);
            }
        }

        Assert.Equal(2, endpoints.Count(e => e.Ejected));
        Assert.True(endpoints[0].Ejected);
        Assert.True(endpoints[1].Ejected);

        // Once one returns, the next endpoint still failing may take its place.
        _time.Advance(Outlier.BaseEjectionTime);
        health.ReportFailure(endpoints[5]);
        Assert.True(endpoints[5].Ejected);
    }

    [Fact]
    public void ReportFailure_SmallService_StillEjectsOne()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a", "b", "c"], Outlier with { MaxEjectionPercent = 10 });
        for (var i = 0; i < Outlier.ConsecutiveFailures; i++)
        {
            health.ReportFailure(endpoints[0]);
            health.ReportFailure(endpoints[1]);
        }

        Assert.True(endpoints[0].Ejected);
        Assert.False(endpoints[1].Ejected);
    }

    [Fact]
    public void ReportFailure_DetectionOff_NeverEjects()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a"], outlier: null);
        for (var i = 0; i < 100; i++)
        {
            health.ReportFailure(endpoints[0]);
        }

        Assert.False(endpoints[0].Ejected);
    }

    [Fact]
    public void ReportCheck_FirstResult_DecidesAtOnce()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a", "b"], outlier: null);
        Assert.False(endpoints[0].IsAvailable(activeChecks: true));

        health.ReportCheck(endpoints[0], Checks, passed: true, failure: null);
        health.ReportCheck(endpoints[1], Checks, passed: false, "connection refused");

        Assert.Equal(HealthCheckState.Healthy, endpoints[0].Check);
        Assert.True(endpoints[0].IsAvailable(activeChecks: true));
        Assert.Equal(HealthCheckState.Unhealthy, endpoints[1].Check);
        Assert.Equal("connection refused", endpoints[1].LastCheckFailure);
    }

    [Fact]
    public void ReportCheck_Thresholds_NeedRunsInARow()
    {
        using var health = new ServiceHealth(_time, _observer);
        var a = health.Configure(["a"], outlier: null)[0];
        health.ReportCheck(a, Checks, passed: true, null);

        // Two failures, a pass, two failures: never three in a row.
        foreach (var passed in new[] { false, false, true, false, false })
        {
            health.ReportCheck(a, Checks, passed, "status 503");
        }

        Assert.Equal(HealthCheckState.Healthy, a.Check);
        health.ReportCheck(a, Checks, passed: false, "status 503");
        Assert.Equal(HealthCheckState.Unhealthy, a.Check);

        health.ReportCheck(a, Checks, passed: true, null);
        Assert.Equal(HealthCheckState.Unhealthy, a.Check);
        health.ReportCheck(a, Checks, passed: true, null);
        Assert.Equal(HealthCheckState.Healthy, a.Check);
        Assert.Equal(["a healthy", "a unhealthy", "a healthy"], _observer.Events);
        Assert.Equal(4, a.ChecksPassed);
        Assert.Equal(5, a.ChecksFailed);
    }

    [Fact]
    public void Configure_Reload_KeepsStateOfKeptEndpointsAndForgetsRemovedOnes()
    {
        using var health = new ServiceHealth(_time, _observer);
        var first = health.Configure(["a", "b"], Outlier);
        health.ReportCheck(first[0], Checks, passed: true, null);
        for (var i = 0; i < Outlier.ConsecutiveFailures; i++)
        {
            health.ReportFailure(first[1]);
        }

        var second = health.Configure(["c", "a"], Outlier);

        Assert.Same(first[0], second[1]);
        Assert.Equal(HealthCheckState.Healthy, second[1].Check);
        Assert.Equal(HealthCheckState.Unknown, second[0].Check);
        Assert.Equal(0, _time.ActiveTimers);
    }

    [Fact]
    public void Configure_DetectionSwitchedOff_ReturnsEjectedEndpoints()
    {
        using var health = new ServiceHealth(_time, _observer);
        var endpoints = health.Configure(["a", "b"], Outlier);
        for (var i = 0; i < Outlier.ConsecutiveFailures; i++)
        {
            health.ReportFailure(endpoints[0]);
        }

        health.Configure(["a", "b"], outlier: null);

        Assert.False(endpoints[0].Ejected);
        Assert.Equal(0, _time.ActiveTimers);
        Assert.Equal(["a ejected 10s", "a returned"], _observer.Events);
    }

    private void EjectAndWait(ServiceHealth health, EndpointHealth endpoint, List<TimeSpan> lengths)
    {
        for (var i = 0; i < Outlier.ConsecutiveFailures; i++)
        {
            health.ReportFailure(endpoint);
        }

        Assert.True(endpoint.Ejected);
        lengths.Add(endpoint.EjectedUntil!.Value - _time.GetUtcNow());
        _time.Advance(lengths[^1]);
        Assert.False(endpoint.Ejected);
    }
}
