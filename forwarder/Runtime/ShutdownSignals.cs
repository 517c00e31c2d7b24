using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>
/// The host's lifetime: SIGTERM, SIGINT or SIGQUIT turn /readyz to 503 at once, listeners go on
/// accepting for the config's shutdownDelay (so endpoint controllers and load balancers stop
/// sending first: Kubernetes' preStop pattern), then the host stops, which closes the listeners
/// and drains for up to drainTimeout. A second signal cuts the delay short. It replaces the
/// generic host's ConsoleLifetime, which stops at once; System.CommandLine's own handling is
/// turned off in Program.cs, as it exits 130/143 two seconds after the signal whatever is open.
/// </summary>
internal sealed partial class ShutdownSignals(ProxyRuntime runtime, IHostApplicationLifetime lifetime, TimeProvider time, ILogger<ShutdownSignals> logger)
    : IHostLifetime, IDisposable
{
    private readonly CancellationTokenSource _delayCut = new();
    private PosixSignalRegistration[] _registrations = [];
    private Task _delaying = Task.CompletedTask;
    private int _signals;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        _registrations = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT }.Select(s => PosixSignalRegistration.Create(s, OnSignal))];
        return Task.CompletedTask;
    }

    /// <summary>Called once the host has stopped; a delay still running (the host was stopped some other way) is cut.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _delayCut.CancelAsync().ConfigureAwait(false);
        await _delaying.ConfigureAwait(false);
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _delayCut.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        // The host decides when the process ends, not the default action of the signal.
        context.Cancel = true;
        if (Interlocked.Increment(ref _signals) == 1)
        {
            _delaying = StopAfterDelayAsync(context.Signal);
        }
        else
        {
            LogDelayCut(logger, context.Signal);
            _delayCut.Cancel();
        }
    }

    private async Task StopAfterDelayAsync(PosixSignal signal)
    {
        var delay = runtime.RequestShutdown();
        LogShutdownRequested(logger, signal, delay);
        if (delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(delay, time, _delayCut.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // A second signal, or the host stopping on its own: go on to stop now.
            }
        }

        lifetime.StopApplication();
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "{Signal} received: /readyz reports 503; listeners accept for {Delay} more, then stop and drain")]
    private static partial void LogShutdownRequested(ILogger logger, PosixSignal signal, TimeSpan delay);

    [LoggerMessage(EventId = 121, Level = LogLevel.Information, Message = "{Signal} received again: the shutdown delay is cut short")]
    private static partial void LogDelayCut(ILogger logger, PosixSignal signal);
}
