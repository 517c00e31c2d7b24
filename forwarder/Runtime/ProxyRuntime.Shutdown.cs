using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <content>Shutdown: readiness off first, then stop accepting and drain what is open.</content>
internal sealed partial class ProxyRuntime
{
    /// <summary>Turns readiness off while listeners go on accepting; returns how long they should (the current config's shutdown delay).</summary>
    public TimeSpan RequestShutdown()
    {
        _shutdownRequested = true;
        return Config.ShutdownDelay;
    }

    /// <summary>
    /// Stops accepting, then drains for the current config's drain timeout and aborts what is left.
    /// Bounded on its own (drain timeout plus a short grace), so the host may wait for it without a limit.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _draining = true;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _applyLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            ListenerHost[] hosts;
            lock (_hosts)
            {
                hosts = [.. _hosts.Values];
                _hosts.Clear();
            }

            await Task.WhenAll(hosts.Select(h => h.StopAsync())).ConfigureAwait(false);
            await udpListeners.StopAsync().ConfigureAwait(false);
            await StopInterceptUdpAsync().ConfigureAwait(false);
            await RemoveInterceptRulesAsync().ConfigureAwait(false);
        }
        finally
        {
            _applyLock.Release();
        }

        await DrainAsync(cancellationToken).ConfigureAwait(false);

        // Only now: requests still draining (HTTP/2 streams on open connections, the access log
        // lines of the last responses) use the services' upstream clients and the logs. So do
        // pools a reload dropped: what the drain left on them is aborted.
        await _retiring.AbortAsync().ConfigureAwait(false);
        foreach (var service in Services.Values)
        {
            await service.DisposeAsync().ConfigureAwait(false);
            service.Health.Dispose();
        }

        await accessLogs.DisposeAsync().ConfigureAwait(false);
    }

    private async Task DrainAsync(CancellationToken cancellationToken)
    {
        var drainTimeout = Config.DrainTimeout;
        LogDraining(logger, tracker.Count, drainTimeout);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(drainTimeout);
        try
        {
            // HTTP/2 connections are told to go away and finish their streams within the drain.
            httpHandler.StopHttp2();
            await http2.StopAsync(deadline.Token).ConfigureAwait(false);
            await tracker.WaitUntilEmptyAsync(deadline.Token).ConfigureAwait(false);
            LogDrained(logger);
        }
        catch (OperationCanceledException)
        {
            LogDrainDeadline(logger, tracker.Count);
            tracker.AbortAll("shutdown drain deadline reached");
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await tracker.WaitUntilEmptyAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Aborted connections that still linger die with the process.
            }
        }
    }

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "Stopped accepting; draining {Connections} open connections for up to {DrainTimeout}")]
    private static partial void LogDraining(ILogger logger, int connections, TimeSpan drainTimeout);

    [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "All connections drained")]
    private static partial void LogDrained(ILogger logger);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "Drain deadline reached; aborting {Connections} connections")]
    private static partial void LogDrainDeadline(ILogger logger, int connections);
}
