using Microsoft.Extensions.Logging;

namespace Forwarder.Relay;

/// <content>
/// The spliced links' timeouts: one sweep over them all, on the relay's clock, closes a link
/// idle too long or left half-closed and quiet too long.
/// </content>
internal sealed partial class RelaySplices
{
    /// <summary>
    /// Closes spliced links that carried nothing for the idle timeout (a node gone without a FIN
    /// or RST, whose keep-alives stopped), or that one side half-closed and nothing crossed since
    /// for the half-close timeout (the open half may still be sending its last bytes): each holds
    /// two sockets here and one of the asker's streams.
    /// </summary>
    private void Sweep()
    {
        // A timer callback may start again while the last still runs (a starved thread pool):
        // HalfClosedFor and TimedOut belong to one sweep at a time, and a late tick just skips.
        if (Interlocked.Exchange(ref _sweeping, 1) != 0)
        {
            return;
        }

        try
        {
            var now = _time.GetTimestamp();
            foreach (var rendezvous in _open.Keys)
            {
                if (rendezvous.Splice is not { } splice || rendezvous.TimedOut)
                {
                    continue;
                }

                // Half-closed first: a link left half-closed is closed for that, the more telling
                // reason, even when it has also been quiet longer than the idle timeout.
                var idle = _time.GetElapsedTime(rendezvous.LastActive, now);
                var halfClosed = TimeSpan.FromTicks(Math.Min(idle.Ticks, rendezvous.HalfClosedFor(splice.HalfClosed, now).Ticks));
                if (halfClosed >= _config.HalfCloseTimeout)
                {
                    rendezvous.TimedOut = true;
                    _registry.SpliceTimedOut(halfClosed: true);
                    LogHalfClosedClosed(_logger, rendezvous.Asker.Name, rendezvous.Far.Name, halfClosed);
                    splice.Abort();
                }
                else if (idle >= _config.IdleTimeout)
                {
                    rendezvous.TimedOut = true;
                    _registry.SpliceTimedOut(halfClosed: false);
                    LogIdleClosed(_logger, rendezvous.Asker.Name, rendezvous.Far.Name, idle);
                    splice.Abort();
                }
            }
        }
        catch (Exception ex)
        {
            // An exception out of a timer callback would end the process: this sweep is lost, the next one runs.
            LogSweepFailed(_logger, ex);
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    [LoggerMessage(EventId = 841, Level = LogLevel.Error, Message = "Sweep over the spliced links' timeouts failed; the next one runs as usual")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 836, Level = LogLevel.Information, Message = "Spliced link from node {Asker} to node {Far} closed: nothing crossed it for {Idle} (relay.spliceIdleTimeout)")]
    private static partial void LogIdleClosed(ILogger logger, string asker, string far, TimeSpan idle);

    [LoggerMessage(EventId = 837, Level = LogLevel.Information, Message = "Spliced link from node {Asker} to node {Far} closed: half-closed, with nothing crossing it, for {HalfClosed} (relay.spliceHalfCloseTimeout)")]
    private static partial void LogHalfClosedClosed(ILogger logger, string asker, string far, TimeSpan halfClosed);
}
