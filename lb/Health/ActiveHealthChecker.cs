using System.Net;
using System.Net.Sockets;

namespace Forwarder.LoadBalancing.Health;

/// <summary>One endpoint to check: its health state, where to connect, and the Host an HTTP check names.</summary>
public sealed record HealthCheckTarget(EndpointHealth Health, EndPoint Address, string Host);

/// <summary>
/// Checks each endpoint of a service on its own schedule: a check, then the interval plus random
/// jitter, then the next. Results go to <see cref="ServiceHealth"/>, which decides transitions.
/// <paramref name="configureSocket"/>, when set, runs on each check's socket before it connects.
/// </summary>
public sealed class ActiveHealthChecker(
    HealthCheckOptions options,
    ServiceHealth health,
    IReadOnlyList<HealthCheckTarget> targets,
    TimeProvider time,
    Random? random = null,
    Action<Socket>? configureSocket = null) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _random = random ?? Random.Shared;
    private Task[] _loops = [];

    public HealthCheckOptions Options => options;

    public void Start() => _loops = [.. targets.Select(t => RunAsync(t, _stop.Token))];

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_loops).ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task RunAsync(HealthCheckTarget target, CancellationToken stopping)
    {
        // A new endpoint is checked at once; one already known starts at a random point of the
        // interval, so a reload does not fire every check in the same instant.
        var delay = target.Health.Check == HealthCheckState.Unknown ? TimeSpan.Zero : options.Interval * _random.NextDouble();
        try
        {
            await Task.Delay(delay, time, stopping).ConfigureAwait(false);
            while (true)
            {
                var result = await CheckAsync(target, stopping).ConfigureAwait(false);
                health.ReportCheck(target.Health, options, result.Passed, result.Failure);
                await Task.Delay(options.Interval + (options.Jitter * _random.NextDouble()), time, stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopped by a reload or shutdown.
        }
    }

    private async ValueTask<HealthProbeResult> CheckAsync(HealthCheckTarget target, CancellationToken stopping)
    {
        using var timeout = new CancellationTokenSource(options.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, timeout.Token);
        var result = await HealthProbe.RunAsync(options, target.Address, target.Host, linked.Token, configureSocket).ConfigureAwait(false);
        stopping.ThrowIfCancellationRequested();
        return result;
    }
}
